#!/usr/bin/env python3
"""The `report` job program, run by herald-runner (what a Celery task was).

Params arrive as JSON on stdin; stdout is the job's log; progress goes to Herald
with herald.progress() (where a Celery task called self.update_state(state='PROGRESS')).

    make_report.py [--pages N] [--page-ms MS]     (the kind's command in herald.yml)
"""

import argparse
import json
import sys
import time

import herald


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--page-ms", type=int, default=500, help="time to render one page")
    args = parser.parse_args()
    month = json.load(sys.stdin)["month"]

    print(f"report for {month}: {args.pages} pages", flush=True)
    for page in range(1, args.pages + 1):
        time.sleep(args.page_ms / 1000)
        print(f"rendered page {page}/{args.pages}", flush=True)
        last = page == args.pages
        herald.progress(100 * page / args.pages, f"page {page}/{args.pages}",
                        result={"file": f"report-{month}.pdf", "pages": args.pages} if last else None)
    print(f"wrote report-{month}.pdf", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
