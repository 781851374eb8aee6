"""The deployment files: nginx snippet and example site (nginx -t and a real run),
systemd units (systemd-analyze verify), the cron file, the example config, and
`make install` into a DESTDIR."""

import http.client
import os
import re
import shutil
import socket
import stat
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
UNITS = ["herald-fcgi.socket", "herald-fcgi.service", "herald-runner.service", "herald-runner-once.service",
         "herald-runner.path", "herald-runner.timer", "herald-gc.service", "herald-gc.timer"]
SOCKET_STRING = "unix:/run/herald/fcgi.sock"
WEB_STRING = "/usr/share/herald/web/"


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def nginx_prefix(d, server_body, extra_main=""):
    """A throwaway nginx prefix in d whose one http server holds server_body."""
    shutil.copyfile("/etc/nginx/fastcgi_params", os.path.join(d, "fastcgi_params"))
    user = "user root root;\n" if os.geteuid() == 0 else ""
    write(os.path.join(d, "nginx.conf"), f"""
daemon off;
{user}worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
{extra_main}
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/t_body; fastcgi_temp_path {d}/t_fcgi; proxy_temp_path {d}/t_proxy;
    uwsgi_temp_path {d}/t_uwsgi; scgi_temp_path {d}/t_scgi;
    {server_body}
}}
""")


def nginx_t(d):
    r = subprocess.run([NGINX, "-t", "-p", str(d), "-c", "nginx.conf", "-e", f"{d}/error.log"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, r.stdout
    assert "[warn]" not in r.stdout and "[emerg]" not in r.stdout, r.stdout
    return r.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# nginx


def test_snippet_names_the_rewritable_strings_once_each_kind():
    text = read(os.path.join(REPO, "nginx/herald.conf"))
    assert SOCKET_STRING in text and WEB_STRING in text
    # Every fastcgi_pass uses the one socket string.
    passes = re.findall(r"^\s*fastcgi_pass\s+([^;]+);", text, re.M)
    assert passes and set(passes) == {SOCKET_STRING}, passes
    for needle in ("fastcgi_buffering off", "fastcgi_keep_conn off", "fastcgi_ignore_client_abort off",
                   "gzip off", "client_max_body_size 64k", "fastcgi_read_timeout 75s", "tcp_nodelay on"):
        assert needle in text, needle


def test_snippet_passes_nginx_t(tmp_path):
    d = str(tmp_path)
    shutil.copyfile(os.path.join(REPO, "nginx/herald.conf"), os.path.join(d, "herald.conf"))
    nginx_prefix(d, "server { listen 127.0.0.1:1; include herald.conf; }")
    nginx_t(d)


def with_throwaway_certificate(site: str, d: str) -> str:
    """An example site's text pointing at a certificate made for the test in d, and logging there."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make a throwaway certificate for the example site"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=example.com",
                    "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem", "-days", "1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (site.replace("/etc/letsencrypt/live/example.com/fullchain.pem", f"{d}/cert.pem")
                .replace("/etc/letsencrypt/live/example.com/privkey.pem", f"{d}/key.pem")
                .replace("/var/log/nginx/", f"{d}/"))


def test_example_site_passes_nginx_t(tmp_path):
    d = str(tmp_path)
    site = read(os.path.join(REPO, "nginx/example-site.conf"))
    assert re.search(r"listen 443 ssl http2;", site)
    assert "include snippets/herald.conf;" in site
    for directive in ("worker_processes", "worker_connections", "worker_rlimit_nofile", "worker_shutdown_timeout"):
        assert directive in site, f"the header comment should explain {directive}"
    site = with_throwaway_certificate(site, d)
    write(os.path.join(d, "site.conf"), site)
    os.makedirs(os.path.join(d, "snippets"), exist_ok=True)
    shutil.copyfile(os.path.join(REPO, "nginx/herald.conf"), os.path.join(d, "snippets", "herald.conf"))
    shutil.copyfile(os.path.join(REPO, "nginx/herald-log.conf"), os.path.join(d, "snippets", "herald-log.conf"))
    assert "include snippets/herald-log.conf;" in site
    assert re.search(r"^\s*access_log\s+\S+\s+herald;", site, re.M), "the example site must log in the herald format"
    nginx_prefix(d, "include /etc/nginx/mime.types; include site.conf;",
                 extra_main="worker_rlimit_nofile 20000;\nworker_shutdown_timeout 30s;")
    nginx_t(d)


def test_example_cluster_passes_nginx_t_with_the_snippet_its_comment_makes(tmp_path):
    d = str(tmp_path)
    site = read(os.path.join(REPO, "nginx/example-cluster.conf"))
    # The header's sed command, applied as written: each of its substitutions must find its text.
    snippet = read(os.path.join(REPO, "nginx/herald.conf"))
    substitutions = re.findall(r"-e 's\|([^|]+)\|([^|]+)\|'", site)
    assert len(substitutions) == 2, substitutions
    for old, new in substitutions:
        assert old in snippet, f"example-cluster.conf's sed looks for {old!r}, which herald.conf no longer has"
        snippet = snippet.replace(old, new)
    assert "fastcgi_next_upstream off;" not in snippet and "unix:/run/herald/fcgi.sock" not in snippet
    site = with_throwaway_certificate(site, d)
    write(os.path.join(d, "site.conf"), site)
    os.makedirs(os.path.join(d, "snippets"), exist_ok=True)
    write(os.path.join(d, "snippets", "herald-cluster.conf"), snippet)
    shutil.copyfile(os.path.join(REPO, "nginx/herald-log.conf"), os.path.join(d, "snippets", "herald-log.conf"))
    nginx_prefix(d, "include /etc/nginx/mime.types; include site.conf;",
                 extra_main="worker_rlimit_nofile 20000;\nworker_shutdown_timeout 30s;")
    nginx_t(d)


class RunningNginx:
    def __init__(self, d, port):
        self.d, self.port = d, port
        self.proc = subprocess.Popen([NGINX, "-p", d, "-c", "nginx.conf", "-e", f"{d}/error.log"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None, read(f"{d}/error.log")
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)

    def request(self, method, path, body=None, headers=None, source=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5,
                                          source_address=(source, 0) if source else None)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def stop(self):
        try:
            os.killpg(self.proc.pid, 15)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


@pytest.fixture
def snippet_nginx(tmp_path):
    """nginx with the snippet, its socket pointing at a path where nothing listens."""
    d = str(tmp_path)
    web = os.path.join(REPO, "web") + "/"
    text = read(os.path.join(REPO, "nginx/herald.conf"))
    text = text.replace(SOCKET_STRING, f"unix:{d}/absent.sock").replace(WEB_STRING, web)
    write(os.path.join(d, "herald.conf"), text)
    port = free_port()
    nginx_prefix(d, f"server {{ listen 127.0.0.1:{port}; include herald.conf; location = / {{ return 302 /herald/; }} }}")
    n = RunningNginx(d, port)
    yield n
    n.stop()


@pytest.mark.parametrize("method,path", [("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/jobs/0123456789abcdefghjkmnpqrs/events"),
                                         ("GET", "/jobs/events?ids=a,b"), ("GET", "/healthz"), ("GET", "/metrics")])
def test_nginx_answers_502_as_json_when_herald_fcgi_is_down(snippet_nginx, method, path):
    import json
    status, headers, body = snippet_nginx.request(method, path, body=b"{}" if method == "POST" else None,
                                                  headers={"Content-Type": "application/json"})
    assert status == 502
    assert headers["content-type"].startswith("application/json"), headers
    err = json.loads(body)["error"]
    assert err["status"] == 502 and err["code"] == "bad_gateway" and err["message"]


def test_nginx_refuses_big_bodies_with_413_json(snippet_nginx):
    import json
    status, headers, body = snippet_nginx.request("POST", "/jobs", body=b"x" * 70000,
                                                  headers={"Content-Type": "application/json"})
    assert status == 413
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"]["status"] == 413


def test_healthz_and_metrics_are_local_only(snippet_nginx):
    import json
    for path in ("/healthz", "/metrics"):
        status, headers, body = snippet_nginx.request("GET", path, source="127.0.0.2")
        assert status == 403, (path, status, body)
        assert json.loads(body)["error"]["status"] == 403


def test_static_web_client_is_served(snippet_nginx):
    status, headers, body = snippet_nginx.request("GET", "/herald/")
    assert status == 200 and headers["content-type"].startswith("text/html"), headers
    assert b'id="start"' in body
    for name, ctype in (("herald.js", "application/javascript"), ("herald.mjs", "application/javascript"),
                        ("demo.js", "application/javascript"), ("demo.css", "text/css")):
        status, headers, body = snippet_nginx.request("GET", "/herald/" + name)
        assert status == 200 and headers["content-type"].startswith(ctype), (name, headers)
        assert headers.get("cache-control") == "no-cache"
    status, headers, _ = snippet_nginx.request("GET", "/")
    assert status == 302 and headers["location"].endswith("/herald/")


# ---------------------------------------------------------------------------
# systemd


def verify_units(root, unit_dir):
    """systemd-analyze verify --root=root on the units in root/unit_dir; returns its output."""
    # The root needs systemd's own units (sysinit.target, ...) next to ours.
    sysunits = os.path.join(root, "usr/lib/systemd/system")
    shutil.copytree("/usr/lib/systemd/system", sysunits, symlinks=True, dirs_exist_ok=True)
    r = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", f"--root={root}"] + UNITS,
                       cwd=os.path.join(root, unit_dir.lstrip("/")), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return r.returncode, r.stdout


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_units_verify(tmp_path):
    root = str(tmp_path)
    for b in ("herald-fcgi", "herald-runner"):  # stand-ins: verify checks that ExecStart is executable
        write(os.path.join(root, "usr/local/bin", b), "#!/bin/sh\nexit 0\n")
        os.chmod(os.path.join(root, "usr/local/bin", b), 0o755)
    os.makedirs(os.path.join(root, "etc/systemd/system"), exist_ok=True)
    for u in UNITS:
        shutil.copyfile(os.path.join(REPO, "systemd", u), os.path.join(root, "etc/systemd/system", u))
    code, out = verify_units(root, "/etc/systemd/system")
    assert code == 0 and out.strip() == "", out


def unit_settings(path):
    settings = {}
    for line in read(path).splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            k, v = line.split("=", 1)
            settings.setdefault(k.strip(), []).append(v.strip())
    return settings


def test_systemd_units_contract():
    sock = unit_settings(os.path.join(REPO, "systemd/herald-fcgi.socket"))
    assert sock["ListenStream"] == ["/run/herald/fcgi.sock"]
    assert sock["SocketGroup"] == ["www-data"] and sock["SocketMode"] == ["0660"] and sock["Backlog"] == ["4096"]
    # PartOf= the service would restart (and remove) the socket with the service: refused connections.
    assert "PartOf" not in sock and "BindsTo" not in sock, sock
    fcgi = unit_settings(os.path.join(REPO, "systemd/herald-fcgi.service"))
    assert fcgi["StandardInput"] == ["socket"]
    assert fcgi["StandardOutput"] == ["journal"] and fcgi["StandardError"] == ["journal"]
    assert fcgi["LimitNOFILE"] == ["20480"] and fcgi["User"] == ["herald-web"]
    # Bounded: 20,000 streams with one unsent event each (<= ~70 KiB) fit, a leak does not grow for ever.
    assert fcgi["MemoryMax"] == ["2G"], fcgi.get("MemoryMax")
    assert sorted(fcgi["ReadWritePaths"][0].split()) == ["/var/lib/herald/cancel", "/var/lib/herald/idempotency",
                                                         "/var/lib/herald/new", "/var/lib/herald/tmp"]
    runner = unit_settings(os.path.join(REPO, "systemd/herald-runner.service"))
    assert runner["ExecStart"][0].split()[1] == "work" and runner["User"] == ["herald"]
    assert runner["KillMode"] == ["mixed"] and runner["TimeoutStopSec"] == ["45s"]
    # 78 (bad configuration, state directory on a network filesystem) is not cured by restarting.
    for unit in (fcgi, runner):
        assert unit["RestartPreventExitStatus"] == ["78"], unit
    path = unit_settings(os.path.join(REPO, "systemd/herald-runner.path"))
    assert path["DirectoryNotEmpty"] == ["/var/lib/herald/new"] and path["Unit"] == ["herald-runner-once.service"]
    timer = unit_settings(os.path.join(REPO, "systemd/herald-runner.timer"))
    assert timer["OnCalendar"] == ["minutely"] and timer["Persistent"] == ["true"]
    assert timer["Unit"] == ["herald-runner-once.service"]
    once = unit_settings(os.path.join(REPO, "systemd/herald-runner-once.service"))
    assert once["Type"] == ["oneshot"] and once["ExecStart"][0].split()[1] == "run"
    gc = unit_settings(os.path.join(REPO, "systemd/herald-gc.service"))
    assert gc["ExecStart"][0].split()[1] == "gc"
    assert unit_settings(os.path.join(REPO, "systemd/herald-gc.timer"))["Unit"] == ["herald-gc.service"]


def test_cron_file_format():
    jobs = []
    for line in read(os.path.join(REPO, "cron/herald")).splitlines():
        if not line.strip() or line.lstrip().startswith("#") or re.match(r"^[A-Z_]+=", line):
            continue
        fields = line.split(None, 6)
        assert len(fields) == 7, f"cron.d lines need 5 time fields, a user and a command: {line!r}"
        assert fields[5] == "herald", line
        jobs.append(fields[6])
    assert any("herald-runner run --config /etc/herald/herald.yml" in j for j in jobs), jobs
    assert any("herald-runner gc --config /etc/herald/herald.yml" in j for j in jobs), jobs


# ---------------------------------------------------------------------------
# config and make install (need the real binaries)


def test_example_config_is_accepted(bin_dir):
    cfg = os.path.join(REPO, "config/herald.yml")
    for argv in ([f"{bin_dir}/herald-runner", "check-config", "--config", cfg],
                 [f"{bin_dir}/herald-fcgi", "--check-config", "--config", cfg]):
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        assert r.returncode == 0, f"{' '.join(argv)} -> {r.returncode}\n{r.stdout}"


def test_herald_fcgi_check_config_refuses_a_bad_file_with_78_naming_key_and_line_and_prints_its_version(bin_dir, tmp_path):
    # SPEC §2 and §5 (herald-runner's side is in the Swift CommandLine tests).
    bad = tmp_path / "bad.yml"
    bad.write_text("state_dir: /var/lib/herald\nheartbeat: often\n")
    r = subprocess.run([f"{bin_dir}/herald-fcgi", "--check-config", "--config", str(bad)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 78, r.stdout
    assert "heartbeat" in r.stdout and "line 2" in r.stdout, r.stdout
    # HERALD_CONFIG is honoured when --config is not given.
    r = subprocess.run([f"{bin_dir}/herald-fcgi", "--check-config"], env={**os.environ, "HERALD_CONFIG": str(bad)},
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 78 and "heartbeat" in r.stdout, r.stdout
    r = subprocess.run([f"{bin_dir}/herald-fcgi", "--version"], stdout=subprocess.PIPE, text=True, timeout=30)
    assert r.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+\n", r.stdout), r.stdout


@pytest.mark.parametrize("prefix", ["/usr", "/opt/herald"])
def test_make_install(bin_dir, tmp_path, prefix):
    dest = str(tmp_path / "dest")
    r = subprocess.run(["make", "-C", REPO, "install", f"DESTDIR={dest}", f"PREFIX={prefix}", f"BIN_DIR={bin_dir}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert r.returncode == 0, r.stdout
    root = lambda p: os.path.join(dest, p.lstrip("/"))  # noqa: E731

    for b in ("herald-fcgi", "herald-runner"):
        mode = os.stat(root(f"{prefix}/bin/{b}")).st_mode
        assert stat.S_ISREG(mode) and mode & 0o111, b
    assert os.path.isfile(root("/etc/herald/herald.yml.example"))
    for name in ("index.html", "herald.js", "herald.mjs", "demo.js", "demo.css"):
        assert os.path.isfile(root(f"{prefix}/share/herald/web/{name}")), name
    assert os.path.isfile(root(f"{prefix}/share/herald/cron/herald"))
    assert f"{prefix}/bin/herald-runner run" in read(root(f"{prefix}/share/herald/cron/herald"))

    snippet = read(root(f"{prefix}/share/herald/nginx/herald.conf"))
    assert f"alias {prefix}/share/herald/web/;" in snippet
    assert SOCKET_STRING in snippet
    assert os.path.isfile(root(f"{prefix}/share/herald/nginx/example-site.conf"))
    assert os.path.isfile(root(f"{prefix}/share/herald/nginx/example-cluster.conf"))
    assert os.path.isfile(root(f"{prefix}/share/herald/nginx/herald-log.conf"))

    unitdir = "/lib/systemd/system"
    for u in UNITS:
        text = read(root(f"{unitdir}/{u}"))
        for exe in re.findall(r"^ExecStart=(\S+)", text, re.M):
            assert exe in (f"{prefix}/bin/herald-fcgi", f"{prefix}/bin/herald-runner"), (u, exe)
            assert os.access(root(exe), os.X_OK), exe
        assert "/usr/local/" not in text or prefix == "/usr/local", (u, text)

    if SYSTEMD_ANALYZE:
        code, out = verify_units(dest, unitdir)
        assert code == 0 and out.strip() == "", out

    # The installed snippet is valid nginx.
    d = str(tmp_path / "nginx")
    os.makedirs(d)
    shutil.copyfile(root(f"{prefix}/share/herald/nginx/herald.conf"), os.path.join(d, "herald.conf"))
    nginx_prefix(d, "server { listen 127.0.0.1:1; include herald.conf; }")
    nginx_t(d)
