"""``bm stats``: BOPs, FLOPs, OPs and model size of any model (per layer, in total, or one row per model like
MeliusNet Table 1); ``--summary``: larq's model summary (parameters by precision, memory, float-32 equivalent)."""
import json
import sys

from .. import stats
from ..model_zoo import get_model, get_model_list
from ..models.common import STEMS
from ..model_zoo import check_input_size
from . import cli


def main(argv=None):
    parser = cli.ArgumentParser(prog="bm stats", description=stats.__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", help="model name (see binary_models.get_model_list())")
    parser.add_argument("--input-size", type=cli.positive_int, default=224, help="square input size (default 224)")
    parser.add_argument("--stem", choices=STEMS, help="override the model's stem")
    parser.add_argument("--json", action="store_true", help="print the totals as JSON")
    parser.add_argument("--summary", action="store_true", help="larq's model summary: parameters by precision, "
                        "memory in kB, float-32 equivalent and 8-bit sizes, MACs by precision")
    parser.add_argument("--all", action="store_true", help="one row per model, like MeliusNet Table 1")
    args = parser.parse_args(argv)
    if args.all:
        if args.model or args.stem:
            parser.error("--all lists every model with its own stem: give no model name or --stem")
        for name in get_model_list():
            check_input_size(name, args.input_size)
        reference = stats.paper_numbers() if args.input_size == 224 else None
        print(stats.comparison_table(get_model_list(), args.input_size, reference))
        return 0
    if not args.model:
        parser.error("give a model name or --all")
    try:
        net = get_model(args.model, **({"stem": args.stem} if args.stem else {}))
    except ValueError as err:
        raise cli.UsageError(err)
    check_input_size(net, args.input_size, name=args.model)
    totals = stats.model_statistics(net, args.input_size, name=args.model)
    print(json.dumps(dict(model=args.model, input_size=args.input_size, **totals.totals)) if args.json
          else totals.summary() if args.summary else totals.table())
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_script(main))
