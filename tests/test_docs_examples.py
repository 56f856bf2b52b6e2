"""The example outputs of README.md and docs/*.md are what their commands print (docs/examples.py writes them):
each marked block shows the commands the script runs; the cheap, deterministic ones, re-run, print what the
block shows; no output shows an absolute path of the machine that wrote it."""
import glob
import importlib.util
import os
import re
import shutil

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))


def load_script():
    spec = importlib.util.spec_from_file_location("docs_examples", os.path.join(REPO, "docs", "examples.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


examples = load_script()


def test_every_marked_block_is_an_example_of_the_script_and_every_example_has_its_block():
    marked = {(page, name) for page in PAGES for name in examples.marked_names(examples.page_text(page))}
    assert marked == {(e.page, e.name) for e in examples.EXAMPLES}


@pytest.mark.parametrize("ex", examples.EXAMPLES, ids=lambda e: e.name)
def test_each_block_shows_the_commands_the_script_runs(ex):
    block = examples.shown_block(ex)
    assert block is not None, "%s has no block example:%s" % (ex.page, ex.name)
    assert examples.split_shown(ex, block) is not None, \
        "example:%s in %s does not show these commands:\n%s" % (ex.name, ex.page, "\n".join(ex.commands))
    assert block.strip(), "example:%s is empty: run python docs/examples.py %s" % (ex.name, ex.name)


# An absolute path under a machine's usual roots, or a home folder (~/.mxnet, GluonCV's defaults, are no one's).
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:home|root|work|tmp|Users|var|opt|mnt|srv)/")


@pytest.mark.parametrize("ex", examples.EXAMPLES, ids=lambda e: e.name)
def test_no_example_output_shows_an_absolute_path_or_a_home(ex):
    outputs = "".join(examples.split_shown(ex, examples.shown_block(ex)) or [])
    assert not MACHINE_PATH.search(outputs), MACHINE_PATH.search(outputs).group(0)
    home = os.path.expanduser("~")
    assert home == "/" or home not in outputs
    assert REPO not in outputs


@pytest.fixture(scope="module")
def scratch():
    folder = examples.new_scratch()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


RERUN = [e for e in examples.EXAMPLES if e.check != "recorded"]


@pytest.mark.parametrize("ex", RERUN, ids=lambda e: e.name)
def test_cheap_examples_print_what_their_block_shows(ex, scratch):
    """``exact``: the same text; ``words``: the same words and lines, numbers aside (training on 5 batches
    gives other losses from run to run). Re-run examples never depend on a recorded one's files."""
    shown = examples.split_shown(ex, examples.shown_block(ex))
    printed = examples.run_example(ex, scratch)
    if ex.check == "words":
        shown, printed = [examples.words(t) for t in shown], [examples.words(t) for t in printed]
    assert printed == shown
