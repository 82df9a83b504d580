"""Stage ingest: raw file -> normalized rows (JSONL), rejected rows with line numbers, data report."""

import argparse
import json

from _params import load_params, section
from rnnlm.config import IngestConfig
from rnnlm.errors import exit_on_user_error
from rnnlm.ingest import ingest, require_rows
from rnnlm.io import write_json, write_lines
from rnnlm.lifecycle import exit_with_parent


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--raw", required=True, help="raw input file")
    ap.add_argument("--rows", required=True, help="output: kept rows, JSON lines")
    ap.add_argument("--rejects", required=True, help="output: rejected rows, JSON lines")
    ap.add_argument("--report", required=True, help="output: counts per reason, JSON")
    args = ap.parse_args()
    cfg = section(load_params(), IngestConfig, "ingest", args.corpus)

    result = ingest(args.raw, cfg)
    write_lines(args.rejects, (json.dumps(r, ensure_ascii=False) for r in result.rejects))
    report = result.report(args.raw)
    write_json(args.report, report)
    require_rows(result, args.raw, args.rejects)
    write_lines(args.rows, (json.dumps(r, ensure_ascii=False) for r in result.rows))
    print(f"ingest {args.corpus}: {report['rows_read']} rows read, {report['rows_kept']} kept, "
          f"{report['rows_rejected']} rejected {report['rejected_by_reason'] or ''}".rstrip())


if __name__ == "__main__":
    main()
