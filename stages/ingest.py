"""Stage ingest: raw file -> normalized rows (JSONL), rejected rows with line numbers, data report.

A stream corpus (format: text) keeps every line with its newline (rnnlm.textstream); its raw path may be a
folder of predefined split files."""

import argparse
import json

from _params import load_params, section
from rnnlm.errors import exit_on_user_error
from rnnlm.ingest import IngestTally, ingest_lines, ingest_stream, require_rows
from rnnlm.io import atomic_write, write_json
from rnnlm.lifecycle import exit_with_parent
from rnnlm.schema.ingest import IngestConfig


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--raw", required=True, help="raw input file (a stream: or a folder of split files)")
    ap.add_argument("--rows", required=True, help="output: kept rows, JSON lines")
    ap.add_argument("--rejects", required=True, help="output: rejected rows, JSON lines")
    ap.add_argument("--report", required=True, help="output (a metric): rows read, kept, rejected per reason, JSON")
    args = ap.parse_args()
    cfg = section(load_params(), IngestConfig, "ingest", args.corpus)

    # Rows and rejects stream to their files as they are read: memory holds counts, not rows.
    # Files commit only when their block ends cleanly: a fatal bad row leaves neither, and an
    # input with no usable row leaves the rejects and the report (to read why) but no rows.
    tally = IngestTally()
    read = ingest_stream if cfg.format == "text" else ingest_lines
    with atomic_write(args.rows) as rows_out:
        with atomic_write(args.rejects) as rejects_out:
            for row, reject in read(args.raw, cfg):
                tally.count(row, reject)
                if row is not None:
                    rows_out.write(json.dumps(row, ensure_ascii=False) + "\n")
                else:
                    rejects_out.write(json.dumps(reject, ensure_ascii=False) + "\n")
        report = tally.report(args.raw)
        write_json(args.report, report)
        require_rows(tally, args.raw, args.rejects)
    print(f"ingest {args.corpus}: {report['rows_read']} rows read, {report['rows_kept']} kept, "
          f"{report['rows_rejected']} rejected {report['rejected_by_reason'] or ''}".rstrip())


if __name__ == "__main__":
    main()
