"""README.md shows what the tools print, not numbers typed in by hand."""
import os
import re

import binary_models as bm
from binary_models.stats import comparison_table, paper_numbers

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def readme_block(name):
    text = open(README).read()
    match = re.search(r"<!-- %s:begin -->\n(.*?)\n<!-- %s:end -->" % (name, name), text, re.S)
    assert match, "README.md has no %s block" % name
    return match.group(1)


def test_readme_model_table_is_the_output_of_stats_all():
    assert readme_block("model-table") == comparison_table(bm.get_model_list(), 224, paper_numbers())


def test_readme_quick_start_names_the_two_make_targets():
    text = open(README).read()
    quick_start = text[text.index("## Quick start"):text.index("## Installation")]
    assert "make demo" in quick_start and "make test" in quick_start
