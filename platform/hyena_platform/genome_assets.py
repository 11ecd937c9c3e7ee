"""Where the bundled genome lives inside the installed package."""

from __future__ import annotations

from pathlib import Path

# Vibrio cholerae O1 biovar El Tor N16961 (chrI, chrII), bgzip with .fai/.gzi; see its README.md.
BUNDLED_GENOME = Path(__file__).resolve().parent / "assets" / "genomes" / "vibrio_cholerae_n16961.fa.gz"
