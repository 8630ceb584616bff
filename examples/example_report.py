"""What the batch examples' eval_family.py scripts share: their command line (`inputs` writes the
evaluation family's files, `report` scores the served results) and writing the figures into the
example's README between its <!-- figures --> markers."""
import argparse
import re


def write_figures(readme, lines):
    text = open(readme).read()
    block = "<!-- figures -->\n" + "\n".join(lines) + "\n<!-- /figures -->"
    open(readme, "w").write(re.sub(r"<!-- figures -->.*?<!-- /figures -->", lambda _: block, text, flags=re.S))


def run(doc, inputs, report):
    """inputs(work); report(work, results) -> lines of figures."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["inputs", "report"])
    ap.add_argument("--work", required=True)
    ap.add_argument("--results", help="report: the batch's output file")
    ap.add_argument("--readme", help="report: the README whose figures to rewrite")
    ap.add_argument("--records-per-second", type=float, default=0.0)
    args = ap.parse_args()
    if args.command == "inputs":
        inputs(args.work)
        return
    lines = report(args.work, args.results)
    if args.records_per_second:
        lines.append(f"- `ferry batch` over them: {args.records_per_second:,.0f} records/s (this machine)")
    print("\n".join(lines))
    if args.readme:
        write_figures(args.readme, lines)
