"""The example sessions of README.md and docs/*.md, run for real.

``python docs/examples.py`` (after ``make deploy``) runs every command below in a new scratch folder, as a user
would from the checkout's root (``deploy/`` and ``native/`` are linked into it, ``bm`` is on PATH), and writes
what each printed into the page's marked block::

    <!-- example:NAME:begin -->
    ```
    $ COMMAND
    WHAT IT PRINTED
    ```
    <!-- example:NAME:end -->

``python docs/examples.py NAME...`` runs only the sessions holding those examples (a session's examples run in
order, in one folder: later ones read what earlier ones wrote). ``--list`` prints the examples.

Every command runs with ``OMP_NUM_THREADS=1`` (``THREADS``). What is shown is the terminal's view: a progress
bar's last state (then nothing, where it clears itself), the scratch folder and the checkout shown as
``/path/to/binary-models``, a line longer than ``WIDTH`` characters cut with `` ...``.

``tests/test_docs_examples.py`` checks every block: its commands are the ones below; an ``exact`` example,
re-run, prints what the block shows; a ``words`` example the same words (numbers aside); a ``recorded`` one
(training, and what reads its results) is not re-run; no output shows an absolute path of this machine.
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOWN_ROOT = "/path/to/binary-models"
WIDTH = 200  # a longer line (the training's Namespace(...) line) is cut to its first CUT characters and " ..."
CUT = 112
THREADS = "1"  # OMP_NUM_THREADS of every command: a shared machine's second thread spins at barriers

Example = collections.namedtuple("Example", "name page session check commands status")


def example(name, page, session, check, *commands, status=0):
    return Example(name, page, session, check, commands, status)


TOUR_TRAIN = ("bm train --dataset digits --model meliusnet22 --input-size 8 --num-epochs 1 --batch-size 32 \\\n"
              "    --lr 0.002 --lr-mode cosine --optimizer adam --save-dir runs/tour/train")
SSD_TRAIN = ("bm train-ssd --network binary_densenet28 --data-shape 128 --dataset runs/synthetic_voc \\\n"
             "    --growth 16 --init-channels 16 --stem 7x7 --extra-filters 128,128,64,64 --batch-size 8 \\\n"
             "    --epochs 12 --lr 0.004 --num-workers 1 --val-interval 4 --seed 1 --save-prefix runs/synthetic/ \\\n"
             "    --no-progress")

# In the order they run. Sessions: "quick" (cheap, deterministic: the tests re-run them), "tour" (the digits
# model trained, packed and served), "detection" (a thin SSD on synthetic data), "demo".
EXAMPLES = [
    # README.md
    example("bm-help", "README.md", "quick", "exact", "bm --help"),
    example("tour-examples", "README.md", "tour", "exact", "bm examples runs/tour"),
    example("tour-train", "README.md", "tour", "recorded", TOUR_TRAIN),
    example("tour-convert", "README.md", "tour", "recorded",
            "bm convert --params runs/tour/train/imagenet-meliusnet22-best.params "
            "--output runs/tour/packed/meliusnet22"),
    example("tour-predict", "README.md", "tour", "recorded",
            "bm predict --packed runs/tour/packed/meliusnet22 --top 2 --repeat 10 runs/tour/digit1794.png \\\n"
            "    runs/tour/digit1795.png runs/tour/digit1796.png"),
    example("tour-bm-predict", "README.md", "tour", "recorded",
            "deploy/build/bm-predict --top 2 --repeat 10 runs/tour/packed/meliusnet22 runs/tour/digit1796.png"),
    example("tour-run", "README.md", "tour", "exact",
            "python runs/tour/count_models.py meliusnet22 2>&1 | grep '^ValueError'",
            "bm run runs/tour/count_models.py meliusnet22"),
    # docs/formats.md
    example("formats-pair", "docs/formats.md", "tour", "recorded",
            "cat runs/tour/train/imagenet-meliusnet22-0.pair.json"),
    example("formats-run", "docs/formats.md", "tour", "recorded",
            "cat runs/tour/train/imagenet-meliusnet22-run.json"),
    # docs/models.md
    example("stats-totals", "docs/models.md", "quick", "exact",
            "bm stats meliusnet22 --input-size 32 --stem thumbnail --classes 10 | tail -8"),
    # docs/training.md
    example("train-smoke", "docs/training.md", "quick", "words",
            "bm train --dataset digits --model meliusnet22 --input-size 8 --num-epochs 1 --max-batches 5 \\\n"
            "    --no-progress --save-dir runs/smoke",
            "ls runs/smoke"),
    example("tour-resume", "docs/training.md", "tour", "recorded",
            TOUR_TRAIN.replace("--num-epochs 1", "--num-epochs 2") +
            " \\\n    --resume-epoch 1 --resume-params runs/tour/train/imagenet-meliusnet22-0.params \\\n"
            "    --resume-states runs/tour/train/imagenet-meliusnet22-0.states --no-progress"),
    example("demo", "docs/training.md", "demo", "recorded", "bm demo 2>&1 | grep -v '^features\\.'"),
    # docs/detection.md
    example("ssd-data", "docs/detection.md", "detection", "exact",
            "bm synthetic-voc runs/synthetic_voc --train 48 --val 24"),
    example("ssd-train", "docs/detection.md", "detection", "recorded", SSD_TRAIN),
    example("ssd-detect", "docs/detection.md", "detection", "recorded",
            "bm detect --params runs/synthetic/ssd_128_binary_densenet28_custom_best.params --thresh 0.3 \\\n"
            "    --output-dir runs/detections runs/synthetic_voc/JPEGImages/000050.jpg"),
    # docs/reliability.md
    example("error-flag", "docs/reliability.md", "quick", "exact",
            "bm train --dataset digits --batch-size -4", status=2),
    example("error-file", "docs/reliability.md", "quick", "exact",
            "echo 'not a parameter file' > runs/garbage.params",
            "bm convert --model meliusnet22 --params runs/garbage.params --output runs/packed/x", status=2),
    example("error-size", "docs/reliability.md", "quick", "exact",
            "bm train --dataset digits --model meliusnet22 --stem grouped --input-size 16", status=2),
]


def by_name():
    return {e.name: e for e in EXAMPLES}


# ---- the blocks -----------------------------------------------------------------------------------------------

def block_pattern(name):
    return re.compile(r"(<!-- example:%s:begin -->\n```\n)(.*?)(```\n<!-- example:%s:end -->)"
                      % (re.escape(name), re.escape(name)), re.S)


def marked_names(text):
    return re.findall(r"<!-- example:([\w-]+):begin -->", text)


def page_text(page):
    with open(os.path.join(REPO, page)) as f:
        return f.read()


def shown_block(ex, text=None):
    """The content of ``ex``'s block in its page (None when the page has none)."""
    match = block_pattern(ex.name).search(text if text is not None else page_text(ex.page))
    return match and match.group(2)


def render(ex, outputs):
    """The block's content: each command as typed (``$ ``), then what it printed."""
    parts = []
    for command, output in zip(ex.commands, outputs):
        parts.append("$ " + command + "\n")
        parts.append(output + ("\n" if output and not output.endswith("\n") else ""))
    return "".join(parts)


def split_shown(ex, block):
    """The outputs shown in ``block`` after each of ``ex``'s commands, or None when the block does not show
    exactly these commands, in this order."""
    outputs, rest = [], block
    for i, command in enumerate(ex.commands):
        head = "$ " + command + "\n"
        if not rest.startswith(head):
            return None
        rest = rest[len(head):]
        if i + 1 < len(ex.commands):
            end = rest.find("$ " + ex.commands[i + 1] + "\n")
            if end < 0 or (end > 0 and rest[end - 1] != "\n"):
                return None
            outputs.append(rest[:end])
            rest = rest[end:]
        else:
            outputs.append(rest)
    return outputs


# ---- running --------------------------------------------------------------------------------------------------

def terminal_view(text, scratch):
    """What a terminal shows of ``text``, with the scratch folder and the checkout as ``SHOWN_ROOT`` and long
    lines cut."""
    for root in sorted({scratch, os.path.realpath(scratch), REPO, os.path.realpath(REPO)}, key=len, reverse=True):
        text = text.replace(root, SHOWN_ROOT)
    lines = []
    for line in text.split("\n"):
        line = line.split("\r")[-1].rstrip()
        if len(line) > WIDTH:
            line = line[:CUT] + " ..."
        lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + ("\n" if lines else "")


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def words(text):
    """``text`` with every number as N (what a ``words`` example compares)."""
    return NUMBER.sub("N", text)


def new_scratch():
    """A scratch folder set up as a checkout's root after ``make deploy``: deploy/ and native/ linked."""
    scratch = tempfile.mkdtemp(prefix="bm-docs-")
    for name in ("deploy", "native"):
        os.symlink(os.path.join(REPO, name), os.path.join(scratch, name))
    os.makedirs(os.path.join(scratch, "runs"))
    return scratch


def environment():
    return dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
                COLUMNS="100", PYTHONWARNINGS="ignore", OMP_NUM_THREADS=THREADS)


def run_example(ex, scratch):
    """Run ``ex``'s commands in ``scratch``; returns the outputs as shown. Raises RuntimeError when the last
    command's exit status is not the example's."""
    outputs = []
    for i, command in enumerate(ex.commands):
        result = subprocess.run(["bash", "-c", command], cwd=scratch, env=environment(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        printed = result.stdout.decode("utf-8", "replace")  # not text=True: that would turn each \r into \n
        outputs.append(terminal_view(printed, scratch))
        expected = ex.status if i + 1 == len(ex.commands) else 0
        if result.returncode != expected:
            raise RuntimeError("%s: `%s` exited with %d, not %d:\n%s"
                               % (ex.name, command, result.returncode, expected, printed))
    return outputs


def write_block(ex, content):
    path = os.path.join(REPO, ex.page)
    text = page_text(ex.page)
    match = block_pattern(ex.name).search(text)
    if not match:
        raise SystemExit("%s has no block example:%s" % (ex.page, ex.name))
    with open(path, "w") as f:
        f.write(text[:match.start(2)] + content + text[match.end(2):])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="examples whose sessions to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the examples and exit")
    args = parser.parse_args(argv)
    if args.list:
        for ex in EXAMPLES:
            print("%-16s %-20s %-10s %s" % (ex.name, ex.page, ex.check, ex.session))
        return 0
    unknown = set(args.names) - set(by_name())
    if unknown:
        parser.error("unknown examples: %s" % ", ".join(sorted(unknown)))
    sessions = {by_name()[n].session for n in args.names} or {e.session for e in EXAMPLES}
    scratches = {}
    try:
        for ex in EXAMPLES:
            if ex.session not in sessions:
                continue
            if ex.session not in scratches:
                scratches[ex.session] = new_scratch()
            scratch = scratches[ex.session]
            started = time.time()
            content = render(ex, run_example(ex, scratch))
            write_block(ex, content)
            print("%-16s %-20s %5.0f s" % (ex.name, ex.page, time.time() - started), flush=True)
    finally:
        for scratch in scratches.values():
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
