"""README's configuration reference is generated from the job dataclasses and must stay current."""

from pathlib import Path

from hyena_platform.reference import config_reference_markdown, render_into

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_reference_is_current():
    text = README.read_text()
    assert render_into(text) == text, "run: python -m hyena_platform.reference --write README.md"


def test_every_key_has_a_meaning():
    rows = [line for line in config_reference_markdown().splitlines() if line.startswith("| `")]
    assert len(rows) > 60
    blank = [row.split("|")[1].strip() for row in rows if row.rstrip().endswith("|  |")]
    assert not blank, f"keys without a comment in their dataclass: {blank}"
