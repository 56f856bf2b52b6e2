"""What the package writes and reads back, safely: atomic writes (:mod:`.atomic`) and the temporaries of
dead writers (:mod:`.tempfiles`), files replaced together with their SHA-256 record (:mod:`.pairs`),
checkpoints (:mod:`.checkpoints`), the run lock (:mod:`.locks`), the run file (:mod:`.runs`) and packed
models (:mod:`.packs`). See docs/formats.md."""
from ..errors import FileProblem, MissingFile  # noqa: F401
from .atomic import atomic_path, clean_folder, make_folder, staging_folder, temporaries, write_json  # noqa: F401
from .pairs import (check_pair, finish_commit, finish_interrupted_commits, pair_record,  # noqa: F401
                    replace_together, sha256)
from .checkpoints import checkpoint_record, load_parameters, load_states, save_checkpoint  # noqa: F401
from .locks import lock_run, unlock_run  # noqa: F401
from .runs import find_run_file, read_run_file, run_file, trained_model, write_run_file  # noqa: F401
