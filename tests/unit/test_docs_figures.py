"""docs/grounding.svg is what docs/grounding_figure.py draws (rerun the script after editing it)."""

from __future__ import annotations

import runpy

from tests.helpers import ROOT


def test_the_grounding_figure_is_up_to_date():
    script = runpy.run_path(str(ROOT / "docs" / "grounding_figure.py"))
    assert (ROOT / "docs" / "grounding.svg").read_text() == script["render"]()
