"""The publisher: writes a status JSON for each job at RATE per second (default 10),
with seq + 1 and `updated_at` = now each time, and logs what it published.

    --mode file    rewrite STATE/jobs/ID.json (temp file + rename, as a runner does;
                   no fsync: this isolates herald-fcgi's fan-out path)
    --mode nchan   POST the JSON to http://HOST:PORT/pub/KEY (nchan publisher)
    --mode django  cache.set('job:KEY', json) through Django's cache (django-redis),
                   as a Celery task updating its progress would

Jobs come from --jobs (JSON: [{"key": ..., "doc": {...}}]). Publishes of the jobs
are spread evenly over each period, from --start (epoch seconds; default now). With --count N
each job publishes its states 1..N (the first one period after the start), then stops; with
--tag each state's message is `sK tMS` (K its number, MS the epoch ms it was published) and its
progress K × 100 / N, as bench/ticker.py reports them (the fan-out rows, bench/fanout.py).
Stops on SIGTERM/SIGINT or after --duration;
then writes {"published": {job index: [[seq, updated_at], ...]}, "late_ms_max": ...}
to --out.
"""
import argparse
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone

stop = False


def _stop(*_):
    global stop
    stop = True


def now_rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t * 1000) % 1000:03d}Z"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=("file", "nchan", "django"), required=True)
    p.add_argument("--jobs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--state-dir")
    p.add_argument("--port", type=int)
    p.add_argument("--threads", type=int, default=4, help="publishing threads (default 4)")
    p.add_argument("--start", type=float, help="epoch seconds of the first period (default: now)")
    p.add_argument("--count", type=int, help="states per job, then stop (default: until --duration)")
    p.add_argument("--tag", action="store_true", help="message `sK tMS`, progress K × 100 / count")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    jobs = json.load(open(args.jobs))
    n = len(jobs)
    period = 1.0 / args.rate
    published = {i: [] for i in range(n)}
    seqs = [int(j["doc"].get("seq", 0)) for j in jobs]

    if args.mode == "file":
        jobs_dir = os.path.join(args.state_dir, "jobs")
        tmp_dir = os.path.join(args.state_dir, "tmp")

        def send(i, text):
            key = jobs[i]["key"]
            tmp = os.path.join(tmp_dir, f"{os.getpid()}.bench{i}.tmp")
            with open(tmp, "w") as f:
                f.write(text)
            os.rename(tmp, os.path.join(jobs_dir, key + ".json"))
    elif args.mode == "nchan":
        import http.client
        send = None

        def make_nchan_send():
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
            return lambda i, text: nchan_send(conn, i, text)

        def nchan_send(conn, i, text):
            conn.request("POST", "/pub/" + jobs[i]["key"], body=text.encode(),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            if r.status >= 300:
                print(f"publish: HTTP {r.status}", file=sys.stderr)
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoapp")
        import django
        django.setup()
        from django.core.cache import cache

        def send(i, text):
            cache.set("job:" + jobs[i]["key"], text, None)

    # Several publishing threads (each its own share of the jobs and, for nchan, its own
    # connection): one synchronous HTTP client cannot POST 1,000 times a second.
    start = args.start or time.time()
    first = 1 if args.count else 0
    late = [0.0]
    threads = max(1, min(args.threads, n))

    def publish_loop(t_index):
        local_send = send if args.mode != "nchan" else make_nchan_send()
        mine = list(range(t_index, n, threads))
        k = first
        while not stop and time.time() - start < args.duration and (not args.count or k <= args.count):
            for i in mine:
                due = start + k * period + i * period / n
                wait = due - time.time()
                if wait > 0:
                    time.sleep(wait)
                else:
                    late[0] = max(late[0], -wait)
                if stop:
                    break
                t = time.time()
                seqs[i] += 1
                doc = dict(jobs[i]["doc"])
                doc["seq"] = seqs[i]
                ts = now_rfc3339(t)
                doc["updated_at"] = ts
                if args.tag:
                    doc["progress"] = k * 100 / args.count
                    doc["message"] = f"s{k} t{int(t * 1000)}"
                else:
                    doc["progress"] = float(seqs[i] % 100)
                    doc["message"] = f"step {seqs[i]}"
                local_send(i, json.dumps(doc, separators=(",", ":")))
                published[i].append([seqs[i], ts])
            k += 1

    import threading
    workers = [threading.Thread(target=publish_loop, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        for w in workers:
            w.join(timeout=0.2)
    late_max = late[0]
    with open(args.out, "w") as f:
        json.dump({"published": published, "late_ms_max": late_max * 1000}, f)


if __name__ == "__main__":
    main()
