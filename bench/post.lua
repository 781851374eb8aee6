-- wrk -s bench/post.lua: POST /jobs with a demo job (anonymous submit on the bench stack)
wrk.method = "POST"
wrk.body = '{"kind": "demo", "params": {"steps": "1", "interval_ms": "0"}}'
wrk.headers["Content-Type"] = "application/json"
