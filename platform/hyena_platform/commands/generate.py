"""`hyena generate --model URI (--prompt ACGT | --fasta FA --record NAME | --fasta FA --region chr:s-e)`.

Continues the prompt with `--max-new-tokens` bases sampled by the cached decoder
(hyena.generation) and writes FASTA to stdout or `--output`. Each record's header carries the
prompt, the seed and the mean per-base log-likelihood of the generated bases under the model;
`--log-likelihoods FILE.tsv` writes every base's. The model reads [SEP] then the prompt (the
start token the scoring job uses), so the prompt may be as long as l_max - 1 bases.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import uuid
from pathlib import Path

from hyena_platform.errors import ConfigError, InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or a checkpoint directory")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store that models:/ URIs are read from")
    prompt = parser.add_argument_group("prompt (one of)")
    prompt.add_argument("--prompt", help="the prompt as bases, e.g. ACGTTGCA")
    prompt.add_argument("--fasta", help="FASTA file holding the prompt (with --record or --region)")
    prompt.add_argument("--record", help="a whole FASTA record as the prompt")
    prompt.add_argument("--region", help="chr:start-end of the FASTA (0-based, end-exclusive) as the prompt")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="bases to generate (default 256)")
    parser.add_argument("--temperature", type=float, default=1.0, help="> 0 (default 1.0)")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k most likely bases (0: all)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling, in (0, 1] (default 1.0)")
    parser.add_argument("--greedy", action="store_true", help="always take the most likely base")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
    parser.add_argument("--num-return-sequences", type=int, default=1, help="continuations to generate")
    parser.add_argument("--output", "-o", default="-", help="FASTA file to write (default: stdout)")
    parser.add_argument("--log-likelihoods", default=None, help="TSV of per-base log-likelihoods to write")
    parser.add_argument("--line-width", type=int, default=80, help="FASTA line width (default 80)")


def run(args: argparse.Namespace) -> int:
    from hyena import generation
    from hyena_platform.score.plan import resolve_model

    prompt, label = read_prompt(args)
    _check_destinations(args)
    model = resolve_model(args.model, registry_uri=args.tracking_uri).model
    ids = [1] + prompt.tolist()  # [SEP] starts the context, as in scoring
    t0 = time.perf_counter()
    try:
        out = generation.generate(model, ids, args.max_new_tokens, temperature=args.temperature,
                                  top_k=args.top_k or None, top_p=args.top_p, seed=args.seed,
                                  num_return_sequences=args.num_return_sequences, greedy=args.greedy)
    except generation.GenerationError as err:
        raise ConfigError(_as_flags(str(err), len(prompt))) from None
    seconds = time.perf_counter() - t0
    records = fasta_records(out, label, args)
    _write(args.output, records)
    if args.log_likelihoods:
        _write(args.log_likelihoods, likelihood_table(out))
    total = out.log_likelihoods.numel()
    mean = float(out.log_likelihoods.mean()) if total else float("nan")
    print(f"generated {out.log_likelihoods.shape[0]} x {args.max_new_tokens} bases in {seconds:.2f} s "
          f"({total / seconds if seconds > 0 else 0:,.0f} bases/s); mean log-likelihood {mean:.4f} per base "
          f"(perplexity {math.exp(-mean) if total else float('nan'):.3f})", file=sys.stderr)
    return 0


def read_prompt(args: argparse.Namespace):
    """The prompt's token ids and a label for the FASTA header."""
    from hyena.tokenizer import Tokenizer, TokenizerError

    given = [name for name in ("prompt", "record", "region") if getattr(args, name)]
    if len(given) != 1:
        raise ConfigError("give one prompt: --prompt BASES, --fasta FILE --record NAME, or --fasta FILE --region chr:start-end")
    if args.prompt is not None:
        if args.fasta:
            raise ConfigError("--prompt takes the bases itself; drop --fasta (or use --record/--region)")
        try:
            return Tokenizer().encode(args.prompt), f"prompt={args.prompt[:20]}{'...' if len(args.prompt) > 20 else ''}"
        except TokenizerError as err:
            raise InputError(f"--prompt: {err}") from None
    if not args.fasta:
        raise ConfigError(f"--{given[0]} needs --fasta FILE")
    return _fasta_prompt(args.fasta, args.record or args.region)


def _fasta_prompt(fasta: str, text: str):
    from hyena_platform.data.chunks import fetch_codes
    from hyena_platform.data.fasta import tokenize_codes
    from hyena_platform.data.genome import ChunkSpec, read_records
    from hyena_platform.score.plan import parse_region

    if not Path(fasta).is_file():
        raise InputError(f"--fasta {fasta}: file not found")
    records = {r.name: r for r in read_records([fasta])}
    chrom, start, end = parse_region(text, records)
    record = records.get(chrom)
    if record is None:
        raise InputError(f"{fasta}: no record {chrom!r} (records: {', '.join(list(records)[:6])})")
    end = record.length if end is None else end
    if not 0 <= start < end <= record.length:
        raise InputError(f"--region {text}: outside {chrom} (0-{record.length}); give 0 <= start < end "
                         f"<= {record.length} (0-based, end-exclusive)")
    spec = ChunkSpec(fasta, chrom, start, end, "generate", start)
    ids = tokenize_codes(fetch_codes(spec), source=fasta, chrom=chrom, start=start)
    return ids, f"prompt={chrom}:{start}-{end}"


def _as_flags(message: str, prompt_bases: int) -> str:
    """The library's message in terms of this command's options (the prompt has [SEP] in front)."""
    message = message.replace("max_new_tokens", "--max-new-tokens").replace("top_p", "--top-p")
    message = message.replace("temperature must", "--temperature must").replace("use greedy decoding", "use --greedy")
    message = message.replace(f"prompt ({prompt_bases + 1} tokens)", f"prompt ({prompt_bases} bases + [SEP])")
    return message.replace(f"the prompt has {prompt_bases + 1} tokens", f"the prompt has {prompt_bases} bases + [SEP]")


def _check_destinations(args: argparse.Namespace) -> None:
    for flag, path in (("--output", args.output), ("--log-likelihoods", args.log_likelihoods)):
        if path and path != "-" and not Path(path).expanduser().resolve().parent.is_dir():
            raise InputError(f"{flag} {path}: the directory does not exist; create it or choose another path")
    if args.fasta and args.output != "-" and Path(args.output).resolve() == Path(args.fasta).resolve():
        raise InputError(f"--output {args.output} is the prompt's FASTA; choose another file")


def fasta_records(out, label: str, args: argparse.Namespace) -> str:
    from hyena.tokenizer import Tokenizer

    tok, width, lines = Tokenizer(), args.line_width, []
    mode = "greedy" if args.greedy else (f"temperature={args.temperature:g} top_k={args.top_k} "
                                         f"top_p={args.top_p:g} seed={args.seed}")
    for i in range(out.sequences.shape[0]):
        bases = tok.decode(out.sequences[i, out.prompt_length:])
        ll = out.log_likelihoods[i]
        mean = float(ll.mean()) if ll.numel() else float("nan")
        lines.append(f">generated_{i + 1} {label} new_bases={len(bases)} {mode} mean_log_likelihood={mean:.4f}")
        lines += [bases[j:j + width] for j in range(0, len(bases), width)] or [""]
    return "\n".join(lines) + "\n"


def likelihood_table(out) -> str:
    from hyena.tokenizer import Tokenizer

    tok, rows = Tokenizer(), ["sequence\tposition\tbase\tlog_likelihood"]
    for i in range(out.sequences.shape[0]):
        bases = tok.decode(out.sequences[i, out.prompt_length:])
        rows += [f"generated_{i + 1}\t{j}\t{b}\t{v:.6f}" for j, (b, v) in enumerate(zip(bases, out.log_likelihoods[i].tolist()))]
    return "\n".join(rows) + "\n"


def _write(path: str, text: str) -> None:
    """stdout, or a temporary file renamed into place (never a half-written file)."""
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    final = Path(path).expanduser()
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(text)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
