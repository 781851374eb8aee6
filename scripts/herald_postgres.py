"""A private PostgreSQL cluster for the demo and the tests (ENGINEERING.md, "PostgreSQL on these machines").

initdb refuses root, so as root initdb and pg_ctl run as `nobody` (setpriv) in a directory of their
own; the server listens on a unix socket in that directory only, with fsync off. stop() ends it by
its data directory (pg_ctl), and is registered with atexit, so a failing test or a Ctrl-C stops it too.
`durable=True` keeps fsync, synchronous_commit and full_page_writes as PostgreSQL ships them (the
bench: the directory store it is compared with fsyncs too).
"""

import atexit
import glob
import os
import shutil
import subprocess
import tempfile

AS_NOBODY = ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


class ClusterError(RuntimeError):
    pass


def server_binaries() -> str | None:
    """The directory with initdb and pg_ctl, newest PostgreSQL first; None when none is installed."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                  key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0, reverse=True)
    return os.path.dirname(dirs[0]) if dirs else None


def _free_port(host: str) -> int:
    import socket
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class PostgresCluster:
    """initdb + pg_ctl in `directory` (a fresh temporary one when None); start() before use."""

    def __init__(self, directory: str | None = None, superuser: str = "herald", listen: list | tuple = (),
                 durable: bool = False):
        self.bin = server_binaries()
        if self.bin is None:
            raise ClusterError("PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)")
        self.directory = os.path.abspath(directory) if directory else tempfile.mkdtemp(prefix="herald-pg-")
        os.makedirs(self.directory, exist_ok=True)
        self.data = os.path.join(self.directory, "data")
        self.log = os.path.join(self.directory, "postgres.log")
        self.superuser = superuser
        # TCP addresses to listen on as well (a test's other "hosts" reach it there), on a free port.
        self.listen = list(listen)
        self.port = _free_port(self.listen[0]) if self.listen else 5432
        self.durable = durable
        self._counter = 0
        self._started = False

    def _as_server(self, argv: list, check: bool = True) -> subprocess.CompletedProcess:
        argv = (AS_NOBODY if os.getuid() == 0 else []) + argv
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           cwd="/tmp", timeout=120)
        if check and r.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} exited {r.returncode}: {r.stdout.decode(errors='replace')}")
        return r

    def start(self) -> "PostgresCluster":
        if os.getuid() == 0:
            shutil.chown(self.directory, "nobody", "nogroup")
        if not os.path.isdir(self.data):
            self._as_server([f"{self.bin}/initdb", "-D", self.data, "-A", "trust", "-U", self.superuser,
                             "--no-sync", "-E", "UTF8", "--locale=C"])
            if self.listen:
                with open(os.path.join(self.data, "pg_hba.conf"), "a", encoding="utf-8") as f:
                    f.writelines(f"host all all {address}/32 trust\n" for address in self._peers())
        self.start_server()
        atexit.register(self.stop)
        return self

    def start_server(self) -> None:
        listen = ",".join(self.listen)
        opts = f"-k {self.directory} -p {self.port} -c listen_addresses='{listen}' -c max_connections=300"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._as_server([f"{self.bin}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-o", opts, "start"])
        self._started = True

    def stop_server(self, mode: str = "fast") -> None:
        self._as_server([f"{self.bin}/pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"])

    def restart(self) -> None:
        self._as_server([f"{self.bin}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "restart"])

    def stop(self, remove: bool = True) -> None:
        """Stops the server (immediately) and removes the directory; safe to call twice."""
        if self._started and os.path.isdir(self.data):
            self._as_server([f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"], check=False)
            self._started = False
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)

    def conninfo(self, database: str = "postgres", user: str | None = None, host: str | None = None) -> str:
        """By the unix socket, or over TCP to `host` (one of `listen`)."""
        return f"host={host or self.directory} port={self.port} dbname={database} user={user or self.superuser}"

    def _peers(self) -> list:
        """The other end of each listening address's /30 (support_cluster.NetHost), which may connect."""
        import ipaddress
        peers = []
        for address in self.listen:
            net = ipaddress.ip_network(f"{address}/30", strict=False)
            peers += [str(h) for h in net.hosts() if str(h) != address]
        return peers

    def sql(self, statements: str, database: str = "postgres", user: str | None = None) -> str:
        """Runs SQL with psql; returns its unaligned output (rows, `|` between columns)."""
        r = subprocess.run([f"{self.bin}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.directory, "-p", str(self.port),
                            "-U", user or self.superuser, "-d", database, "-c", statements],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise ClusterError(f"psql: {r.stderr.decode(errors='replace').strip()}")
        return r.stdout.decode()

    def create_database(self, prefix: str = "herald") -> str:
        """A new, empty database; its name."""
        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        self.sql(f"CREATE DATABASE {name}")
        return name
