"""`hyena demo`: the whole model card on the bundled genome. `run` (run_demo) orchestrates the
steps of `steps` over the jobs of `jobs`; `pictures` draws, `summary` says what it all means."""
