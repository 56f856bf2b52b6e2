"""README.md is short and shows what the tools print, not numbers typed in by hand; it and docs/ link only to
pages and sections that exist. (The example outputs: tests/test_docs_examples.py.)"""
import glob
import os
import re

import binary_models as bm
from binary_models.stats import comparison_table, paper_numbers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")
DOCS = sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
PAGES_OF_ISSUE_26 = ("models", "training", "detection", "native", "deploy", "formats", "reliability", "architecture")


def read(path):
    with open(path) as f:
        return f.read()


def readme_block(name):
    match = re.search(r"<!-- %s:begin -->\n(.*?)\n<!-- %s:end -->" % (name, name), read(README), re.S)
    assert match, "README.md has no %s block" % name
    return match.group(1)


def test_readme_model_table_is_the_output_of_stats_all():
    assert readme_block("model-table") == comparison_table(bm.get_model_list(), 224, paper_numbers())


def test_readme_quick_start_names_the_two_make_targets_and_how_to_run_the_commands():
    text = read(README)
    quick_start = text[text.index("## Quick start"):text.index("## Installation")]
    assert "make demo" in quick_start and "make test" in quick_start
    assert "source .venv/bin/activate" in quick_start and ".venv/bin/bm" in quick_start


def test_readme_is_at_most_16_kb_and_links_every_page_of_docs():
    assert len(read(README).encode()) <= 16 * 1024
    linked = set(re.findall(r"\]\(docs/([\w-]+)\.md", read(README)))
    assert set(PAGES_OF_ISSUE_26) <= linked
    assert {os.path.basename(p)[:-3] for p in DOCS} - {"examples"} <= linked


def anchors(text):
    """GitHub's anchors of a page's headings."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.*)$", text, re.M)}


def test_links_between_the_pages_point_at_pages_and_sections_that_exist():
    broken = []
    for page in [README] + DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", read(page)):
            if re.match(r"\w+://", target):
                continue
            path, _, anchor = target.partition("#")
            path = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(path):
                broken.append((os.path.relpath(page, REPO), target))
            elif anchor and path.endswith(".md") and anchor not in anchors(read(path)):
                broken.append((os.path.relpath(page, REPO), target))
    assert not broken
