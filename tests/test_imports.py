"""Import structure: the model library stays free of the platform's heavy dependencies, and the
platform/ source root never shadows the standard-library `platform` module."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(code: str, cwd: Path = REPO) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_import_hyena_pulls_in_neither_ray_nor_mlflow():
    out = _run(
        "import sys, hyena\n"
        "m = hyena.HyenaDNAForCausalLM(hyena.HyenaConfig.variant('tiny-1k'))\n"
        "print(sorted(n for n in ('ray', 'mlflow', 'pyarrow', 'hyena_platform') if n in sys.modules))"
    )
    assert out.strip() == "[]"


def test_stdlib_platform_is_not_shadowed_from_repo_root():
    # From the repo root, '' is first on sys.path, and platform/ is a directory there.
    out = _run("import platform, hyena_platform; print(platform.__file__); print(platform.system())")
    stdlib_file, system = out.split()
    assert not stdlib_file.startswith(str(REPO)), stdlib_file
    assert system


def test_platform_source_root_has_no_init():
    assert not (REPO / "platform" / "__init__.py").exists()


def test_importing_platform_does_no_work():
    out = _run(
        "import sys, hyena_platform, hyena_platform.cli, hyena_platform.config\n"
        "print(sorted(n for n in ('ray', 'mlflow') if n in sys.modules))"
    )
    assert out.strip() == "[]"


def test_tokenizer_and_config_import_without_torch():
    # Ray Data workers tokenise genomes: they must not pay for importing torch.
    out = _run(
        "import sys, hyena.tokenizer, hyena.config\n"
        "hyena.tokenizer.Tokenizer().encode('ACGT'); hyena.config.HyenaConfig.variant('tiny-1k')\n"
        "print('torch' in sys.modules)"
    )
    assert out.strip() == "False"
