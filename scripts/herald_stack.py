#!/usr/bin/python3
"""Run the whole Herald stack unprivileged in one directory: nginx, herald-fcgi
and herald-runner, sharing a private state directory.

Used by `make demo`:

    /usr/bin/python3 scripts/herald_stack.py demo --port 8080 --bin-dir .build/debug

`make demo-django` adds the example Django app (examples/django) behind the same nginx:

    /usr/bin/python3 scripts/herald_stack.py demo-django --port 8080 --bin-dir .build/debug

and by the tests (stdlib only, importable):

    from herald_stack import Stack
    with Stack(bin_dir, tmp_path, config_overrides={"heartbeat": "1s"}) as stack:
        status, headers, job = stack.json("POST", "/jobs", {"kind": "demo", "params": {}})
        stack.restart_fcgi()
    with Stack(bin_dir, tmp_path, **django_site(tmp_path)) as stack:   # + gunicorn on stack.url + "/"

Layout of the work directory:

    herald.yml              the config (state dir and socket below)
    state/                  the state directory
    fcgi.sock               herald-fcgi's socket (a short /tmp path if this one is too long)
    nginx.conf herald.conf fastcgi_params   nginx's prefix (-p WORKDIR -c nginx.conf); the access
                            log in nginx/herald-log.conf's format
    nginx-tmp/              nginx temp paths
    logs/                   herald-fcgi.log herald-runner.log nginx.log nginx-error.log nginx-access.log
                            app.log (with an app server)
    app.sock                the app server's socket (a short /tmp path if this one is too long)

herald.conf is nginx/herald.conf with its two rewritable strings replaced: the
socket `unix:/run/herald/fcgi.sock` and the web root `/usr/share/herald/web/`.

Every process runs in its own process group and is always stopped (TERM, then
KILL after a grace period) together with any descendants, also on errors.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import errno
import hashlib
import hmac
import http.client
import json
import os
import pwd
import grp
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_postgres import ClusterError, PostgresCluster  # noqa: E402
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNIPPET = os.path.join(REPO, "nginx", "herald.conf")
LOG_SNIPPET = os.path.join(REPO, "nginx", "herald-log.conf")
WEB_DIR = os.path.join(REPO, "web")
SOCKET_STRING = "unix:/run/herald/fcgi.sock"
WEB_STRING = "/usr/share/herald/web/"
NEXT_UPSTREAM_OFF = "fastcgi_next_upstream off;"
NEXT_UPSTREAM_CLUSTER = "fastcgi_next_upstream error timeout;"

# Used when the nginx installation has no fastcgi_params file to copy.
FASTCGI_PARAMS = """\
fastcgi_param  QUERY_STRING       $query_string;
fastcgi_param  REQUEST_METHOD     $request_method;
fastcgi_param  CONTENT_TYPE       $content_type;
fastcgi_param  CONTENT_LENGTH     $content_length;
fastcgi_param  SCRIPT_NAME        $fastcgi_script_name;
fastcgi_param  REQUEST_URI        $request_uri;
fastcgi_param  DOCUMENT_URI       $document_uri;
fastcgi_param  DOCUMENT_ROOT      $document_root;
fastcgi_param  SERVER_PROTOCOL    $server_protocol;
fastcgi_param  REQUEST_SCHEME     $scheme;
fastcgi_param  HTTPS              $https if_not_empty;
fastcgi_param  GATEWAY_INTERFACE  CGI/1.1;
fastcgi_param  SERVER_SOFTWARE    nginx/$nginx_version;
fastcgi_param  REMOTE_ADDR        $remote_addr;
fastcgi_param  REMOTE_PORT        $remote_port;
fastcgi_param  SERVER_ADDR        $server_addr;
fastcgi_param  SERVER_PORT        $server_port;
fastcgi_param  SERVER_NAME        $server_name;
"""

# The state directory's layout (docs/PROTOCOL.md). herald-runner creates it on its
# first start and herald-fcgi refuses to start without it, so the stack waits for
# the runner, or creates it when started without one.
STATE_LAYOUT = ("tmp", "new", "jobs", "queue", "running", "slots", "cancel", "logs", "idempotency")

# Longest path a unix socket may have (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH = 100

DJANGO_DIR = os.path.join(REPO, "examples", "django")
DJANGO_PYTHON = os.path.join(DJANGO_DIR, ".venv", "bin", "python")
DEMO_PASSWORD = "herald-demo"


def nginx_conf_text(workdir: str, listen: str, server_body: str, *, error_log: str, access_log: str = "off",
                    http_head: str = "", main_head: str = "") -> str:
    """The nginx.conf the stack and the benchmarks run (unprivileged, `-p workdir`): the same
    workers, descriptor limits and timeouts for every system measured. Makes the temp dirs."""
    tmp = os.path.join(workdir, "nginx-tmp")
    for sub in ("body", "fastcgi", "proxy", "uwsgi", "scgi"):
        os.makedirs(os.path.join(tmp, sub), exist_ok=True)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 20000 if hard == resource.RLIM_INFINITY else min(20000, hard)
    user_line = ""
    if os.geteuid() == 0:
        # Workers started by root switch to `nobody` and could not reach a socket in a private dir.
        user_line = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"
    return f"""# Written by scripts/herald_stack.py: nginx -p {workdir} -c nginx.conf
{main_head}
daemon off;
master_process on;
{user_line}worker_processes 2;
worker_rlimit_nofile {nofile};
worker_shutdown_timeout 5s;
pid {workdir}/nginx.pid;
error_log {error_log} notice;

events {{
    worker_connections {nofile};
}}

http {{
    {http_head}
    access_log {access_log};
    client_body_temp_path {tmp}/body;
    fastcgi_temp_path {tmp}/fastcgi;
    proxy_temp_path {tmp}/proxy;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65s;
    server_tokens off;

    server {{
        listen {listen};
{server_body}
    }}
}}
"""


def read_token(secret: str, claims: dict) -> str:
    """An HS256 read token (SPEC §9), as an app's server side mints it with the stdlib."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}." + b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())


class StackError(RuntimeError):
    """The stack could not start (the message carries the tail of every log)."""


class AppServer:
    """A web application behind the stack's nginx, on the same origin as Herald: nginx
    proxies every path Herald's snippet does not serve (`location /`) to its unix socket.

    argv    the command; `{socket}` in an argument becomes the socket path
    env     its environment (the stack adds HERALD_URL, the stack's own URL)
    ready   a path that must answer below 500 through nginx before the stack counts as started
    """

    def __init__(self, argv: list, env: dict | None = None, cwd: str | None = None, ready: str = "/"):
        self.argv = list(argv)
        self.env = dict(env or {})
        self.cwd = cwd
        self.ready = ready


def nginx_app_location(socket_path: str) -> str:
    """The nginx location that hands the rest of the site to an app server (gunicorn) on socket_path."""
    return f"""        location / {{
            proxy_pass http://unix:{socket_path}:;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_redirect off;
            proxy_read_timeout 60s;
        }}"""


# ---------------------------------------------------------------------------
# helpers


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (bind to port 0, take the port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _yaml_scalar(value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    # Single-quoted YAML: no escapes but '' for '. Keeps regexes intact.
    return "'" + str(value).replace("'", "''") + "'"


def to_yaml(data, indent: int = 0) -> str:
    """A tiny YAML emitter for nested dicts, lists of scalars and scalars."""
    pad = "  " * indent
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            if value:
                out.append(f"{pad}{key}:\n{to_yaml(value, indent + 1)}")
            else:
                out.append(f"{pad}{key}: {{}}\n")
        elif isinstance(value, (list, tuple)):
            items = ", ".join(_yaml_scalar(v) for v in value)
            out.append(f"{pad}{key}: [{items}]\n")
        else:
            out.append(f"{pad}{key}: {_yaml_scalar(value)}\n")
    return "".join(out)


def deep_merge(base: dict, overrides: dict) -> dict:
    """overrides win; nested dicts merge; a value of None removes the key."""
    merged = dict(base)
    for key, value in (overrides or {}).items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(cannot read {path}: {e.strerror})"
    return "\n".join(data.splitlines()[-lines:])


def _children_map() -> dict:
    children: dict = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(pid: int) -> list:
    """Every live descendant of pid (job programs run in their own process groups)."""
    children = _children_map()
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_pids(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _signal_group(proc: subprocess.Popen, sig) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_process(proc: subprocess.Popen | None, grace: float = 10.0, sig=signal.SIGTERM) -> int | None:
    """Stop proc, its process group and its descendants: sig, then SIGKILL after grace seconds."""
    if proc is None:
        return None
    if proc.poll() is not None:
        _signal_group(proc, signal.SIGKILL)  # leftovers in its group
        return proc.returncode
    family = descendants(proc.pid)
    _signal_group(proc, sig)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        family = set(family) | set(descendants(proc.pid))
        _signal_group(proc, signal.SIGKILL)
        _signal_pids(family, signal.SIGKILL)
        proc.wait(timeout=10)
    # Job programs in their own groups that outlived the runner.
    _signal_group(proc, signal.SIGKILL)
    _signal_pids([p for p in family if _alive_not_zombie(p)], signal.SIGKILL)
    return proc.returncode


def _alive_not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:][:1] != "Z"


# ---------------------------------------------------------------------------
# the stack


class Stack:
    """nginx + herald-fcgi + herald-runner in workdir. A context manager:
    `with Stack(...) as s:` starts and waits for GET /healthz = 200; leaving stops all.

    bin_dir           directory with herald-fcgi and herald-runner
    workdir           created if missing; everything the stack writes goes here
    port              nginx's port on 127.0.0.1 (0: a free one)
    config_overrides  merged into the generated herald.yml (None deletes a key);
                      kinds merge too: {"kinds": {"slow": {"command": [...]}}}
    runner            start `herald-runner work` (False: tests drive the runner)
    fcgi_args         extra arguments for herald-fcgi
    runner_args       extra arguments for `herald-runner work`
    fcgi_mode         'socket': herald-fcgi --socket PATH creates the socket (default);
                      'stdin': the stack owns the listening socket and hands it
                      on fd 0 (like spawn-fcgi); 'systemd': on fd 3 with LISTEN_FDS=1.
                      With the last two the socket survives restart_fcgi().
    fcgi_open_files   start herald-fcgi with this RLIMIT_NOFILE (soft and hard), via prlimit
    app               an AppServer (say gunicorn) nginx proxies `location /` to, started after
                      herald-fcgi and stopped with the rest; django_site() makes one
    demo_owner        sign the page's visitor in as this owner, as an app would: a read-token secret
                      in the config, and POST /herald-demo/login setting the herald_token cookie
                      (HttpOnly, SameSite=Lax, a 24 h token for `sub` = demo_owner)
    database_url      the PostgreSQL store instead of the state directory: `herald-runner migrate`
                      runs before anything starts
    upstream          herald-fcgi sockets nginx passes to as one `upstream` (nginx/example-cluster.conf's
                      settings); the stack then starts no herald-fcgi of its own (tests/support_cluster.py)
    """

    def __init__(self, bin_dir, workdir, port: int = 0, config_overrides: dict | None = None,
                 runner: bool = True, fcgi_args=(), runner_args=(), fcgi_mode: str = "socket",
                 host: str = "127.0.0.1", web_dir: str = WEB_DIR, nginx: str | None = None,
                 start_timeout: float = 30.0, stop_grace: float = 10.0, env: dict | None = None,
                 fcgi_open_files: int | None = None, app: AppServer | None = None,
                 demo_owner: str | None = None, database_url: str | None = None, upstream: list | None = None):
        if fcgi_mode not in ("socket", "stdin", "systemd"):
            raise ValueError(f"fcgi_mode must be socket, stdin or systemd, not {fcgi_mode!r}")
        self.bin_dir = os.path.abspath(str(bin_dir))
        self.workdir = os.path.abspath(str(workdir))
        self.requested_port = int(port)
        self.port = int(port)
        self.host = host
        self.config_overrides = config_overrides or {}
        self.with_runner = runner
        self.fcgi_args = list(fcgi_args)
        self.runner_args = list(runner_args)
        self.fcgi_mode = fcgi_mode
        self.web_dir = os.path.abspath(web_dir)
        self.nginx_bin = nginx or shutil.which("nginx") or "/usr/sbin/nginx"
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.extra_env = env or {}
        self.fcgi_open_files = fcgi_open_files
        self.app = app
        self.demo_owner = demo_owner
        self.read_secret = secrets.token_hex(32) if demo_owner else None
        self.database_url = database_url
        self.upstream = list(upstream or [])

        self.fcgi_bin = os.path.join(self.bin_dir, "herald-fcgi")
        self.runner_bin = os.path.join(self.bin_dir, "herald-runner")
        self.config_path = os.path.join(self.workdir, "herald.yml")
        self.state_dir = os.path.join(self.workdir, "state")
        self.logs_dir = os.path.join(self.workdir, "logs")
        self.nginx_conf = os.path.join(self.workdir, "nginx.conf")
        self.socket_path = os.path.join(self.workdir, "fcgi.sock")
        self.app_socket_path = os.path.join(self.workdir, "app.sock")
        self._socket_tmpdir = None
        self.config: dict = {}

        self.fcgi_proc: subprocess.Popen | None = None
        self.runner_proc: subprocess.Popen | None = None
        self.app_proc: subprocess.Popen | None = None
        self.nginx_proc: subprocess.Popen | None = None
        self._listen_sock: socket.socket | None = None
        self._started = False
        self._log_files: list = []

    # -- paths and logs -------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8080 (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def demo_url(self) -> str:
        return self.url + "/herald/"

    def log_path(self, name: str) -> str:
        """name: herald-fcgi, herald-runner, nginx, nginx-error, nginx-access, app (the app server's output)."""
        aliases = {"fcgi": "herald-fcgi", "runner": "herald-runner", "access": "nginx-access", "error": "nginx-error"}
        return os.path.join(self.logs_dir, aliases.get(name, name) + ".log")

    def read_log(self, name: str) -> str:
        try:
            with open(self.log_path(name), encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, name: str, lines: int = 40) -> str:
        return tail(self.log_path(name), lines)

    def access_log(self) -> list:
        """nginx access log lines in nginx/herald-log.conf's format:
        `ADDR - USER [TIME] "METHOD URI PROTO" STATUS BYTES "AGENT" RTIME "UPSTREAM_STATUS"`,
        URI with any token in the query hidden."""
        return self.read_log("nginx-access").splitlines()

    def requests_seen(self, method: str | None = None, path_prefix: str = "") -> list:
        """(method, uri, status) of every request nginx has logged (finished requests only)."""
        seen = []
        for line in self.access_log():
            try:
                request = line.split('"', 2)[1]
                rest = line.split('"', 2)[2].split()
                m, uri, _ = request.split(" ", 2)
                status = int(rest[0])
            except (IndexError, ValueError):
                continue
            if (method is None or m == method) and uri.startswith(path_prefix):
                seen.append((m, uri, status))
        return seen

    def diagnostics(self) -> str:
        parts = []
        for name, proc in self._processes():
            state = "not started" if proc is None else ("running" if proc.poll() is None else f"exited {proc.returncode}")
            parts.append(f"--- {name} ({state}): {self.log_path(name)}\n{self.log_tail(name)}")
        parts.append(f"--- nginx error log: {self.log_path('nginx-error')}\n{self.log_tail('nginx-error')}")
        return "\n".join(parts)

    def _processes(self) -> list:
        named = [("herald-fcgi", self.fcgi_proc), ("herald-runner", self.runner_proc), ("nginx", self.nginx_proc)]
        return named + ([("app", self.app_proc)] if self.app else [])

    # -- configuration ----------------------------------------------------------

    def _choose_socket_path(self) -> None:
        if len(self.socket_path) > MAX_SOCKET_PATH or len(self.app_socket_path) > MAX_SOCKET_PATH:
            self._socket_tmpdir = tempfile.mkdtemp(prefix="herald-sock-")
            self.socket_path = os.path.join(self._socket_tmpdir, "fcgi.sock")
            self.app_socket_path = os.path.join(self._socket_tmpdir, "app.sock")

    def write_config(self) -> str:
        base = {
            **({"database_url": self.database_url} if self.database_url else {"state_dir": self.state_dir}),
            "socket": self.socket_path,
            "url_prefix": "/jobs",
            "allow_anonymous_submit": True,
            "kinds": {"demo": {"builtin": "demo"}},
        }
        if self.read_secret:
            secret_path = os.path.join(self.workdir, "read-token.key")
            with open(secret_path, "w", encoding="utf-8") as f:
                f.write(self.read_secret + "\n")
            base["read_token_secret_file"] = secret_path
        self.config = deep_merge(base, self.config_overrides)
        text = "# Written by scripts/herald_stack.py\n" + to_yaml(self.config)
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(text)
        return self.config_path

    def write_nginx_conf(self) -> str:
        with open(SNIPPET, encoding="utf-8") as f:
            snippet = f.read()
        for needle in (SOCKET_STRING, WEB_STRING, NEXT_UPSTREAM_OFF):
            if needle not in snippet:
                raise StackError(f"{SNIPPET} no longer contains {needle!r}")
        snippet = snippet.replace(SOCKET_STRING, "herald_fcgi" if self.upstream else "unix:" + self.socket_path)
        if self.upstream:
            # nginx/example-cluster.conf: a node that refuses a connection is passed over (nginx never
            # replays a request it has sent, so a POST still cannot run twice).
            snippet = snippet.replace(NEXT_UPSTREAM_OFF, NEXT_UPSTREAM_CLUSTER)
        snippet = snippet.replace(WEB_STRING, self.web_dir.rstrip("/") + "/")
        with open(os.path.join(self.workdir, "herald.conf"), "w", encoding="utf-8") as f:
            f.write(snippet)

        params = os.path.join(os.path.dirname(os.path.realpath(self.nginx_bin)), "..", "..", "etc", "nginx", "fastcgi_params")
        dest = os.path.join(self.workdir, "fastcgi_params")
        for candidate in ("/etc/nginx/fastcgi_params", params):
            if os.path.exists(candidate):
                shutil.copyfile(candidate, dest)
                break
        else:
            with open(dest, "w", encoding="utf-8") as f:
                f.write(FASTCGI_PARAMS)

        login = ""
        if self.demo_owner:
            token = read_token(self.read_secret, {"sub": self.demo_owner, "exp": int(time.time()) + 86400})
            login = ("\n        # The demo's sign-in, as an app's login would: a read token for the owner, as an HttpOnly cookie.\n"
                     "        location = /herald-demo/login {\n"
                     f'            add_header Set-Cookie "herald_token={token}; Path=/; HttpOnly; SameSite=Lax" always;\n'
                     '            add_header Cache-Control "no-store" always;\n'
                     "            default_type application/json;\n"
                     f"            return 200 '{json.dumps({'owner': self.demo_owner})}\\n';\n"
                     "        }")
        conf = nginx_conf_text(
            self.workdir, f"{self.host}:{self.port}",
            "        server_name localhost;\n        include herald.conf;\n"
            + (nginx_app_location(self.app_socket_path) if self.app else
               "        location = / {\n            return 302 /herald/;\n        }") + login,
            error_log=self.log_path("nginx-error"),
            access_log=f"{self.log_path('nginx-access')} herald",
            # The shipped format (no token ever written), so tests see what production logs.
            http_head=f"include {LOG_SNIPPET};" + self._upstream_block())
        with open(self.nginx_conf, "w", encoding="utf-8") as f:
            f.write(conf)
        return self.nginx_conf

    def _upstream_block(self) -> str:
        if not self.upstream:
            return ""
        # As nginx/example-cluster.conf: a node that refuses is left alone for 5 s, new streams go to the others.
        servers = "".join(f"        server unix:{path} max_fails=1 fail_timeout=5s;\n" for path in self.upstream)
        return f"\n    upstream herald_fcgi {{\n        least_conn;\n{servers}    }}\n"

    def nginx_test(self) -> None:
        """nginx -t on the generated configuration; raises StackError on failure."""
        r = subprocess.run([self.nginx_bin, "-t", "-q", "-p", self.workdir, "-c", "nginx.conf",
                            "-e", self.log_path("nginx-error")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise StackError(f"nginx -t failed:\n{r.stdout}\n{self.log_tail('nginx-error')}")

    # -- processes ------------------------------------------------------------------

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HERALD_", "LISTEN_"))}
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, argv: list, **kw) -> subprocess.Popen:
        log = open(self.log_path(name), "ab")
        self._log_files.append(log)
        log.write(f"=== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("env", self._env())
        kw.setdefault("cwd", self.workdir)
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw)

    def _check_bins(self) -> None:
        missing = [p for p in (self.fcgi_bin, self.runner_bin) if not os.access(p, os.X_OK)]
        if missing:
            raise StackError("Herald binaries not found or not executable: " + ", ".join(missing)
                             + " (build them with `swift build`, or set HERALD_BIN_DIR / --bin-dir)")

    def _listening_socket(self) -> socket.socket:
        if self._listen_sock is None:
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(self.socket_path)
            os.chmod(self.socket_path, 0o660)
            s.listen(1024)
            self._listen_sock = s
        return self._listen_sock

    def start_fcgi(self) -> subprocess.Popen:
        argv = [self.fcgi_bin, "--config", self.config_path]
        if self.fcgi_open_files is not None:
            # A hard limit too: herald-fcgi raises its soft limit to the hard one.
            argv = ["/usr/bin/prlimit", f"--nofile={self.fcgi_open_files}:{self.fcgi_open_files}", "--"] + argv
        if self.fcgi_mode == "socket":
            self.fcgi_proc = self._spawn("herald-fcgi", argv + ["--socket", self.socket_path] + self.fcgi_args)
        elif self.fcgi_mode == "stdin":
            sock = self._listening_socket()
            self.fcgi_proc = self._spawn("herald-fcgi", argv + self.fcgi_args, stdin=sock.fileno())
        else:
            # systemd's protocol: the socket on fd 3, LISTEN_FDS=1, LISTEN_PID the new pid
            # (sh's $$, kept by exec); stdin is /dev/null again.
            sock = self._listening_socket()
            wrapper = ["/bin/sh", "-c",
                       'exec 3<&0 </dev/null; export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=fcgi; exec "$@"', "herald-fcgi"]
            self.fcgi_proc = self._spawn("herald-fcgi", wrapper + argv + self.fcgi_args, stdin=sock.fileno())
        return self.fcgi_proc

    def start_runner(self) -> subprocess.Popen:
        self.runner_proc = self._spawn("herald-runner", [self.runner_bin, "work", "--config", self.config_path] + self.runner_args)
        return self.runner_proc

    def start_nginx(self) -> subprocess.Popen:
        self.nginx_proc = self._spawn("nginx", [self.nginx_bin, "-p", self.workdir, "-c", "nginx.conf",
                                                "-e", self.log_path("nginx-error")])
        return self.nginx_proc

    def start_app(self) -> subprocess.Popen:
        try:
            os.unlink(self.app_socket_path)
        except FileNotFoundError:
            pass
        argv = [a.replace("{socket}", self.app_socket_path) for a in self.app.argv]
        env = {**self._env(), **self.app.env, "HERALD_URL": self.url}
        self.app_proc = self._spawn("app", argv, env=env, **({"cwd": self.app.cwd} if self.app.cwd else {}))
        return self.app_proc

    def stop_app(self, grace: float | None = None) -> int | None:
        return stop_process(self.app_proc, self.stop_grace if grace is None else grace)

    def stop_fcgi(self, grace: float | None = None) -> int | None:
        code = stop_process(self.fcgi_proc, self.stop_grace if grace is None else grace)
        return code

    def stop_runner(self, grace: float | None = None) -> int | None:
        return stop_process(self.runner_proc, self.stop_grace if grace is None else grace)

    def restart_fcgi(self, wait: bool = True, down_for: float = 0.0) -> subprocess.Popen:
        """SIGTERM herald-fcgi, wait for it to exit (down_for more seconds), start a new one."""
        self.stop_fcgi()
        if down_for:
            time.sleep(down_for)
        proc = self.start_fcgi()
        if wait:
            self.wait_healthy()
        return proc

    def restart_runner(self) -> subprocess.Popen:
        self.stop_runner()
        return self.start_runner()

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> "Stack":
        if self._started:
            return self
        self._started = True
        atexit.register(self.stop)
        try:
            self._check_bins()
            os.makedirs(self.workdir, exist_ok=True)
            os.makedirs(self.logs_dir, exist_ok=True)
            if not self.database_url:
                os.makedirs(self.state_dir, exist_ok=True)
            self._choose_socket_path()
            self.write_config()
            if self.database_url:
                self.migrate()
            for attempt in range(5):
                if self.requested_port == 0:
                    self.port = free_port(self.host)
                self.write_nginx_conf()
                self.nginx_test()
                if self.with_runner and self.runner_proc is None:
                    self.start_runner()
                if self.fcgi_proc is None and not self.upstream:
                    if not self.database_url:
                        self.ensure_state_layout()
                    self.start_fcgi()
                if self.app and self.app_proc is None:
                    self.start_app()
                self.start_nginx()
                if self._wait_nginx_bound():
                    break
                # Lost the race for the port: try another one (the app learns the new URL).
                stop_process(self.nginx_proc, 2)
                self.nginx_proc = None
                if self.app:
                    stop_process(self.app_proc, 2)
                    self.app_proc = None
                if self.requested_port != 0 or "Address already in use" not in self.read_log("nginx-error"):
                    raise StackError(f"nginx did not start on port {self.port}\n" + self.diagnostics())
            self.wait_healthy()
            if self.app:
                self.wait_app_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def migrate(self) -> None:
        """`herald-runner migrate` on the stack's database."""
        r = subprocess.run([self.runner_bin, "migrate", "--config", self.config_path], env=self._env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise StackError(f"herald-runner migrate exited {r.returncode}: {r.stdout.decode(errors='replace')}")

    def wait_app_ready(self, timeout: float | None = None) -> None:
        """Wait until the app server answers its ready path through nginx (any status below 500)."""
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            if self.app_proc.poll() is not None:
                raise StackError(f"the app server exited with status {self.app_proc.returncode} during start-up\n"
                                 + self.diagnostics())
            try:
                status, _, body = self.request("GET", self.app.ready, timeout=2)
                if status < 500:
                    return
                last = f"HTTP {status}: {body[:200]!r}"
            except OSError as e:
                last = str(e)
            if time.monotonic() > deadline:
                raise StackError(f"GET {self.url}{self.app.ready} did not answer within {timeout}s (last: {last})\n"
                                 + self.diagnostics())
            time.sleep(0.1)

    def ensure_state_layout(self, timeout: float = 15.0) -> None:
        """Wait for the runner to create the state directory (or create it without a runner)."""
        if not (self.with_runner and self.runner_proc is not None):
            for sub in STATE_LAYOUT:
                os.makedirs(os.path.join(self.state_dir, sub), exist_ok=True)
            return
        deadline = time.monotonic() + timeout
        need = [os.path.join(self.state_dir, sub) for sub in ("tmp", "new", "jobs", "cancel", "logs")]
        while not all(os.path.isdir(d) for d in need):
            if self.runner_proc.poll() is not None:
                raise StackError(f"herald-runner exited with status {self.runner_proc.returncode} during start-up\n"
                                 + self.diagnostics())
            if time.monotonic() > deadline:
                raise StackError(f"herald-runner did not create the state directory {self.state_dir} "
                                 f"within {timeout}s\n" + self.diagnostics())
            time.sleep(0.05)

    def _wait_nginx_bound(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nginx_proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def wait_healthy(self, timeout: float | None = None) -> dict:
        """Wait until GET /healthz through nginx answers 200; returns its JSON."""
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        last = "no answer"
        while True:
            for name, proc in (("herald-fcgi", self.fcgi_proc), ("nginx", self.nginx_proc),
                               ("herald-runner", self.runner_proc if self.with_runner else None)):
                if proc is not None and proc.poll() is not None:
                    raise StackError(f"{name} exited with status {proc.returncode} during start-up\n" + self.diagnostics())
            try:
                status, _, body = self.request("GET", "/healthz", timeout=2)
                if status == 200:
                    try:
                        return json.loads(body)
                    except ValueError:
                        return {}
                last = f"HTTP {status}: {body[:200]!r}"
            except OSError as e:
                last = str(e)
            if time.monotonic() > deadline:
                raise StackError(f"GET {self.url}/healthz did not answer 200 within "
                                 f"{self.start_timeout if timeout is None else timeout}s (last: {last})\n" + self.diagnostics())
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop nginx, herald-fcgi and herald-runner (always safe to call again)."""
        # nginx first so no new requests arrive; QUIT would wait for open streams.
        for attr in ("nginx_proc", "app_proc", "fcgi_proc", "runner_proc"):
            proc = getattr(self, attr)
            try:
                stop_process(proc, self.stop_grace)
            except Exception as e:  # keep stopping the others
                print(f"herald_stack: stopping {attr}: {e}", file=sys.stderr)
        if self._listen_sock is not None:
            self._listen_sock.close()
            self._listen_sock = None
        for f in self._log_files:
            try:
                f.close()
            except OSError:
                pass
        self._log_files = []
        if self._socket_tmpdir:
            shutil.rmtree(self._socket_tmpdir, ignore_errors=True)
            self._socket_tmpdir = None
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- HTTP helpers for tests -------------------------------------------------------

    def request(self, method: str, path: str, body=None, headers: dict | None = None, timeout: float = 10.0):
        """One HTTP request through nginx: returns (status, headers as a lower-case dict, body bytes)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        elif isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            res = conn.getresponse()
            data = res.read()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, data
        finally:
            conn.close()

    def json(self, method: str, path: str, body=None, headers: dict | None = None, timeout: float = 10.0):
        """Like request(), with the body parsed as JSON (None when empty or not JSON)."""
        status, hdrs, data = self.request(method, path, body, headers, timeout)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return status, hdrs, parsed

    def submit(self, kind: str = "demo", params: dict | None = None, headers: dict | None = None) -> dict:
        """POST /jobs; returns the job (raises AssertionError unless 201)."""
        status, _, job = self.json("POST", "/jobs", {"kind": kind, "params": params or {}}, headers)
        if status != 201:
            raise AssertionError(f"POST /jobs answered {status}: {job}")
        return job

    def wait_job(self, job_id: str, states=("succeeded", "failed", "canceled"), timeout: float = 30.0,
                 headers: dict | None = None) -> dict:
        """Poll GET /jobs/ID (tests only; `headers` for require_read_token) until its state is one of states."""
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            status, _, job = self.json("GET", f"/jobs/{job_id}", headers=headers)
            if status == 200 and job and job.get("state") in states:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not in {states} after {timeout}s: {job}\n" + self.diagnostics())


# ---------------------------------------------------------------------------
# the example Django app (examples/django)


def _write_secret(path: str, text: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text + "\n")
    return path


def django_site(workdir, python: str = DJANGO_PYTHON, pages: int = 10, page_ms: int = 500,
                read_token_ttl: int = 600, password: str = DEMO_PASSWORD) -> dict:
    """Stack keyword arguments (config_overrides, app) for examples/django behind the stack's nginx.

    Writes a submitter token and a read-token secret into workdir, configures Herald with
    them (no anonymous submit, require_read_token: true) and the `report` kind (the example's
    job program, run by `python`: pages of page_ms each), migrates the site's SQLite database
    in workdir, creates the demo users alice and bob with `password`, and runs the site with
    gunicorn from the same virtual environment (`make django-venv` makes it)."""
    if not os.access(python, os.X_OK):
        raise StackError(f"{python} is missing: `make django-venv` creates the example's virtual environment")
    gunicorn = os.path.join(os.path.dirname(python), "gunicorn")
    workdir = os.path.abspath(str(workdir))
    os.makedirs(workdir, exist_ok=True)
    token_file = _write_secret(os.path.join(workdir, "submit-tokens"), secrets.token_urlsafe(32))
    secret_file = _write_secret(os.path.join(workdir, "read-token.secret"), secrets.token_hex(32))
    env = {
        "DJANGO_SETTINGS_MODULE": "reportsite.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_DB_PATH": os.path.join(workdir, "django.sqlite3"),
        "HERALD_SUBMIT_TOKEN_FILE": token_file,
        "HERALD_READ_TOKEN_SECRET_FILE": secret_file,
        "HERALD_READ_TOKEN_TTL": str(read_token_ttl),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("HERALD_", "DJANGO_", "LISTEN_"))}
    for command in (["migrate", "--noinput"], ["demo_users", "--password", password]):
        r = subprocess.run([python, "manage.py", *command], cwd=DJANGO_DIR, env={**base_env, **env},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise StackError(f"manage.py {command[0]} failed ({r.returncode}):\n{r.stdout[-3000:]}")
    config = {
        "allow_anonymous_submit": False,
        "submit_tokens_file": token_file,
        "read_token_secret_file": secret_file,
        "require_read_token": True,
        "kinds": {"report": {
            "command": [python, os.path.join(DJANGO_DIR, "jobs", "make_report.py"),
                        "--pages", str(pages), "--page-ms", str(page_ms)],
            "params": {"month": "^[0-9]{4}-(0[1-9]|1[0-2])$"},
            "timeout": "10m",
        }},
    }
    argv = [gunicorn, "--bind", "unix:{socket}", "--workers", "2", "--threads", "4",
            "--graceful-timeout", "5", "--access-logfile", "-", "reportsite.wsgi:application"]
    return {"config_overrides": config, "app": AppServer(argv, env, cwd=DJANGO_DIR, ready="/accounts/login/")}


# ---------------------------------------------------------------------------
# CLI


class _Terminate(Exception):
    pass


def _on_sigterm(signum, frame):
    raise _Terminate()


def _run_until_stopped(stack: "Stack", banner) -> int:
    """Start the stack, print banner(stack), and keep it up until Ctrl-C, SIGTERM or a process exits."""
    # Also SIGINT: a shell may start us with it ignored (background job), yet Ctrl-C must stop the stack.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_sigterm)
    try:
        stack.start()
        print(banner(stack), flush=True)
        while True:
            for name, proc in stack._processes():
                if proc.poll() is not None:
                    print(f"{name} exited with status {proc.returncode}\n" + stack.diagnostics(), file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except (KeyboardInterrupt, _Terminate):
        print("\nstopping…", flush=True)
        return 0
    except StackError as e:
        print(f"herald_stack: {e}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


def _fresh_workdir(args, name: str) -> str:
    workdir = os.path.abspath(args.workdir or os.path.join(REPO, name))
    if args.workdir is None and os.path.isdir(workdir):
        shutil.rmtree(workdir)  # a fresh state directory every time
    return workdir


def demo(args) -> int:
    workdir = _fresh_workdir(args, ".demo")
    database_url = None
    if args.store == "postgres":
        # A private cluster in .demo/postgres, stopped at exit (atexit) like the rest of the stack.
        try:
            cluster = PostgresCluster(os.path.join(workdir, "postgres")).start()
            database_url = cluster.conninfo(cluster.create_database("herald_demo"))
        except ClusterError as e:
            print(f"herald_stack: {e}", file=sys.stderr)
            return 1
    stack = Stack(args.bin_dir, workdir, port=args.port, host=args.host,
                  config_overrides={"workers": args.workers}, demo_owner="demo", database_url=database_url)

    def banner(stack):
        return (f"Herald demo: {stack.demo_url}\n"
                f"  API:   {stack.url}/jobs    (curl -X POST {stack.url}/jobs -H 'Content-Type: application/json' "
                "-d '{\"kind\":\"demo\",\"params\":{\"steps\":\"5\",\"interval_ms\":\"200\"}}')\n"
                + (f"  store: PostgreSQL ({stack.database_url})\n" if stack.database_url else f"  state: {stack.state_dir}\n")
                + f"  logs:  {stack.logs_dir}\n"
                "Ctrl-C stops nginx, herald-fcgi and herald-runner" + (" and PostgreSQL." if stack.database_url else "."))
    return _run_until_stopped(stack, banner)


def demo_django(args) -> int:
    workdir = _fresh_workdir(args, ".demo-django")
    try:
        site = django_site(workdir, python=args.python)
    except StackError as e:
        print(f"herald_stack: {e}", file=sys.stderr)
        return 1
    site["config_overrides"]["workers"] = args.workers
    stack = Stack(args.bin_dir, workdir, port=args.port, host=args.host, **site)

    def banner(stack):
        return (f"Herald + Django example: {stack.url}/\n"
                f"  log in as alice (or bob), password {DEMO_PASSWORD}; two browsers show that each sees only their own jobs\n"
                f"  the job program: examples/django/jobs/make_report.py   the view: examples/django/reports/views.py\n"
                f"  state: {stack.state_dir}\n  logs:  {stack.logs_dir} (app.log is gunicorn's)\n"
                "Ctrl-C stops nginx, herald-fcgi, herald-runner and gunicorn.")
    return _run_until_stopped(stack, banner)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run nginx + herald-fcgi + herald-runner unprivileged.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the demo stack until Ctrl-C")
    p.add_argument("--port", type=int, default=8080, help="nginx port (0: a free one; default 8080)")
    p.add_argument("--host", default="127.0.0.1", help="address nginx listens on (default 127.0.0.1)")
    p.add_argument("--bin-dir", required=True, help="directory with herald-fcgi and herald-runner")
    p.add_argument("--workdir", help="where state, logs and nginx files go (default: REPO/.demo, wiped)")
    p.add_argument("--workers", type=int, default=4, help="jobs run at once (default 4)")
    p.add_argument("--store", choices=("directory", "postgres"), default="directory",
                   help="the state directory (default), or a private PostgreSQL cluster in the workdir")
    d = sub.add_parser("demo-django", help="run the stack with the example Django app until Ctrl-C")
    d.add_argument("--port", type=int, default=8080, help="nginx port (0: a free one; default 8080)")
    d.add_argument("--host", default="127.0.0.1", help="address nginx listens on (default 127.0.0.1)")
    d.add_argument("--bin-dir", required=True, help="directory with herald-fcgi and herald-runner")
    d.add_argument("--python", default=DJANGO_PYTHON, help="the example's virtual environment's python")
    d.add_argument("--workdir", help="where state, logs, database and secrets go (default: REPO/.demo-django, wiped)")
    d.add_argument("--workers", type=int, default=4, help="jobs run at once (default 4)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args)
    if args.command == "demo-django":
        return demo_django(args)
    return 64


if __name__ == "__main__":
    sys.exit(main())
