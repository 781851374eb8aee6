"""Several hosts on one machine, for the PostgreSQL store's tests (SPEC §8).

    NetHost     a network namespace joined to this one by a veth pair, with two addresses
                the test made itself (a /30 no interface here uses): a runner or a web node
                inside talks to PostgreSQL over TCP, and `cut()` takes the link down (the
                processes live on, as on a partitioned host) until `heal()`.
    Cluster     one PostgreSQL (a private cluster, scripts/herald_postgres.py), several
                herald-fcgi nodes behind one nginx `upstream`, several `herald-runner work`
                processes, each node or runner optionally inside a NetHost. Everything is
                stopped by PID and every namespace and link deleted, also when a test fails.

Needs root (ip netns); the tests skip with the reason when they cannot create a namespace.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))

import herald_stack  # noqa: E402
from herald_postgres import PostgresCluster  # noqa: E402
from herald_stack import Stack, StackError, stop_process, to_yaml  # noqa: E402


def _run(argv, check=True):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stdout.strip()}")
    return r


def can_make_namespaces() -> str | None:
    """None when `ip netns` works here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "iproute2's `ip` is missing (make test-deps installs it)"
    name = f"hprobe{os.getpid()}"
    r = _run(["ip", "netns", "add", name], check=False)
    if r.returncode != 0:
        return f"ip netns add failed: {r.stdout.strip()}"
    _run(["ip", "netns", "del", name], check=False)
    return None


def _used_networks() -> list:
    out = _run(["ip", "-o", "addr", "show"]).stdout
    nets = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[2] == "inet":
            nets.append(ipaddress.ip_interface(parts[3]).network)
    return nets


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 in 10.0.0.0/8 that overlaps no address of this host."""
    used = _used_networks()
    for _ in range(1000):
        net = ipaddress.ip_network(f"10.{random.randint(64, 250)}.{random.randint(0, 255)}.{random.randrange(0, 256, 4)}/30")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free /30 in 10.0.0.0/8")


class NetHost:
    """A network namespace linked to this one: `outside` is this side's address, `inside` the namespace's."""

    def __init__(self, tag: str):
        self.name = f"herald-{tag}-{os.getpid()}"
        short = f"{tag[:4]}{os.getpid() % 100000}"
        self.veth_out, self.veth_in = f"ho{short}", f"hi{short}"
        net = _free_subnet()
        hosts = list(net.hosts())
        self.outside, self.inside = str(hosts[0]), str(hosts[1])
        self.prefix = net.prefixlen
        self._made = False

    def create(self) -> "NetHost":
        _run(["ip", "netns", "add", self.name])
        self._made = True
        _run(["ip", "link", "add", self.veth_out, "type", "veth", "peer", "name", self.veth_in])
        _run(["ip", "link", "set", self.veth_in, "netns", self.name])
        _run(["ip", "addr", "add", f"{self.outside}/{self.prefix}", "dev", self.veth_out])
        _run(["ip", "link", "set", self.veth_out, "up"])
        _run(self.argv(["ip", "addr", "add", f"{self.inside}/{self.prefix}", "dev", self.veth_in]))
        _run(self.argv(["ip", "link", "set", self.veth_in, "up"]))
        _run(self.argv(["ip", "link", "set", "lo", "up"]))
        return self

    def argv(self, argv: list) -> list:
        """argv run inside the namespace."""
        return ["ip", "netns", "exec", self.name] + list(argv)

    def cut(self) -> None:
        """The host is cut off: its link goes down on this side; its processes run on and see nothing."""
        _run(["ip", "link", "set", self.veth_out, "down"])

    def heal(self) -> None:
        _run(["ip", "link", "set", self.veth_out, "up"])

    def delete(self) -> None:
        if not self._made:
            return
        _run(["ip", "link", "del", self.veth_out], check=False)
        _run(["ip", "netns", "del", self.name], check=False)
        self._made = False


class Cluster:
    """PostgreSQL, `nodes` herald-fcgi behind one nginx upstream, `runners` herald-runner work.

    kinds           the config's kinds (every process shares one config but its own database host)
    node_hosts      for node i, a NetHost tag to run it in (None: this namespace, unix socket to PostgreSQL)
    runner_hosts    the same for runner i
    idle_runners    runners not started with the cluster (`start_runner(i)` starts one later)
    runner_args     extra arguments for every `herald-runner work`
    """

    def __init__(self, bin_dir, workdir, kinds: dict, nodes: int = 2, runners: int = 2,
                 node_hosts=(), runner_hosts=(), idle_runners=(), runner_args=(), config_overrides: dict | None = None):
        self.bin_dir = str(bin_dir)
        self.workdir = os.path.abspath(str(workdir))
        self.kinds = kinds
        self.node_count, self.runner_count = nodes, runners
        self.node_hosts = list(node_hosts) + [None] * nodes
        self.runner_hosts = list(runner_hosts) + [None] * runners
        self.idle_runners = set(idle_runners)
        self.runner_args = list(runner_args)
        self.config_overrides = config_overrides or {}
        self.hosts: dict = {}
        self.pg = None
        self.front: Stack | None = None
        self.nodes: list = []     # Popen per herald-fcgi node (None once killed)
        self.runners: list = []   # Popen per runner (None once killed)
        self._logs: list = []

    # -- set-up ------------------------------------------------------------------

    def start(self) -> "Cluster":
        try:
            os.makedirs(self.workdir, exist_ok=True)
            # Unix socket paths are short (108 bytes); pytest's tmp_path may be long.
            self.socket_dir = tempfile.mkdtemp(prefix="herald-nodes-")
            tags = {t for t in self.node_hosts + self.runner_hosts if t}
            for tag in sorted(tags):
                self.hosts[tag] = NetHost(tag).create()
            self.pg = PostgresCluster(None,  # a /tmp dir of its own: nobody cannot enter pytest's tmp_path
                                      listen=[h.outside for h in self.hosts.values()]).start()
            self.database = self.pg.create_database("herald")
            r = subprocess.run([os.path.join(self.bin_dir, "herald-runner"), "migrate", "--config", self.config_for(None)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode != 0:
                raise StackError(f"herald-runner migrate: exit {r.returncode}: {r.stdout}")
            # The front: an ordinary stack without its own herald-fcgi or runner, whose nginx
            # passes to an upstream of every node.
            sockets = [os.path.join(self.socket_dir, f"node{i}.sock") for i in range(self.node_count)]
            self.front = Stack(self.bin_dir, os.path.join(self.workdir, "front"), runner=False,
                               database_url=self.pg.conninfo(self.database), upstream=sockets,
                               config_overrides={"kinds": self.kinds})
            for i in range(self.runner_count):
                self.runners.append(None if i in self.idle_runners else self._start_runner(i))
            for i in range(self.node_count):
                self.nodes.append(self._start_node(i))
            self.front.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _base_config(self, host: NetHost | None) -> dict:
        db = self.pg.conninfo(self.database, host=host.outside if host else None)
        base = {"database_url": db, "url_prefix": "/jobs", "allow_anonymous_submit": True, "kinds": self.kinds}
        return herald_stack.deep_merge(base, self.config_overrides)

    def config_for(self, tag: str | None, name: str = "herald") -> str:
        """A config file whose database_url reaches PostgreSQL from `tag`'s namespace."""
        path = os.path.join(self.workdir, f"{name}-{tag or 'local'}.yml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(to_yaml(self._base_config(self.hosts.get(tag) if tag else None)))
        return path

    def _spawn(self, name: str, argv: list, tag: str | None):
        log = open(os.path.join(self.workdir, f"{name}.log"), "ab")
        self._logs.append(log)
        if tag:
            argv = self.hosts[tag].argv(argv)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd=self.workdir)

    def _start_node(self, i: int):
        tag = self.node_hosts[i]
        sock = os.path.join(self.socket_dir, f"node{i}.sock")
        return self._spawn(f"node{i}", [os.path.join(self.bin_dir, "herald-fcgi"), "--config",
                                        self.config_for(tag, f"node{i}"), "--socket", sock], tag)

    def _start_runner(self, i: int):
        tag = self.runner_hosts[i]
        return self._spawn(f"runner{i}", [os.path.join(self.bin_dir, "herald-runner"), "work", "--config",
                                          self.config_for(tag, f"runner{i}")] + self.runner_args, tag)

    # -- faults ------------------------------------------------------------------------

    def kill_node(self, i: int, sig=9) -> None:
        os.kill(self.nodes[i].pid, sig)
        self.nodes[i].wait(10)

    def kill_runner(self, i: int, sig=9) -> None:
        os.kill(self.runners[i].pid, sig)
        self.runners[i].wait(10)

    def start_runner(self, i: int) -> None:
        self.runners[i] = self._start_runner(i)

    def start_node(self, i: int) -> None:
        """Node i again, on its socket (after kill_node)."""
        self.nodes[i] = self._start_node(i)

    def log(self, name: str) -> str:
        try:
            with open(os.path.join(self.workdir, f"{name}.log"), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def diagnostics(self) -> str:
        parts = []
        for name in [f"node{i}" for i in range(self.node_count)] + [f"runner{i}" for i in range(self.runner_count)]:
            parts.append(f"--- {name}\n" + "\n".join(self.log(name).splitlines()[-30:]))
        if self.pg:
            parts.append("--- postgresql\n" + herald_stack.tail(self.pg.log))
        if self.front:
            parts.append(self.front.diagnostics())
        return "\n".join(parts)

    def stop(self) -> None:
        if self.front:
            self.front.stop()
        for proc in self.nodes + self.runners:
            try:
                stop_process(proc, 10)
            except Exception as e:  # keep stopping the others
                print(f"cluster: stopping {proc}: {e}", file=sys.stderr)
        if self.pg:
            self.pg.stop()
        if getattr(self, "socket_dir", None):
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        for host in self.hosts.values():
            host.delete()
        for f in self._logs:
            f.close()
        self._logs = []

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- through the front -------------------------------------------------------------

    def submit(self, kind: str, params: dict | None = None) -> dict:
        return self.front.submit(kind, params)

    def json(self, method: str, path: str, body=None, headers=None, timeout: float = 10.0):
        return self.front.json(method, path, body, headers, timeout)

    def wait_job(self, job_id: str, states=("succeeded", "failed", "canceled"), timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            try:
                status, _, job = self.json("GET", f"/jobs/{job_id}")
                if status == 200 and job and job.get("state") in states:
                    return job
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not in {states} after {timeout}s: {job}\n" + self.diagnostics())
