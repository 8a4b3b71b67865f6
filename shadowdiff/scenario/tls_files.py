"""The TLS files a target or a request names (CA bundle, client certificate and key), loaded
at validate time the way the transports (Python's ssl) and the TLS probe (pyOpenSSL) will load
them, so that an unusable file is a located scenario error instead of a traceback during the
run.
Reads files; no network."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

from shadowdiff.errors import Problem
from shadowdiff.scenario.model import RequestTls, TargetTls
from shadowdiff.scenario.paths import is_regular
from shadowdiff.scenario.yamlsource import FieldPath, SourceDocument


def tls_file_problems(
    tls: TargetTls | RequestTls,
    where: FieldPath,
    document: SourceDocument,
    resolve: Callable[[str], Path],
) -> Iterator[Problem]:
    """One problem per unusable setting under `where` (`targets.<side>.tls`, or a request's
    `tls`, which names a CA only). Files that do not exist are reported by the loader already
    and skipped here."""
    if tls.ca is not None and is_regular(resolve(tls.ca)):
        reason = _ca_problem(resolve(tls.ca))
        if reason:
            yield document.problem((*where, "ca"), f"not a usable CA bundle: {reason}")
    if not isinstance(tls, TargetTls):
        return
    if tls.client_cert is not None and is_regular(resolve(tls.client_cert)):
        key = resolve(tls.client_key) if tls.client_key else None
        if key is None or is_regular(key):
            problem = _client_pair_problem(resolve(tls.client_cert), key)
            if problem:
                field, reason = problem
                yield document.problem((*where, field), reason)


def _ca_problem(ca: Path) -> str | None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError, ValueError) as exc:
        return _reason(exc)
    if not context.get_ca_certs():
        return "no certificate in it"
    return None


def _client_pair_problem(cert: Path, key: Path | None) -> tuple[str, str] | None:
    """(field, reason) for a client certificate and key that do not load or do not match."""
    key_field = "client_key" if key is not None else "client_cert"
    asked_for_passphrase: list[bool] = []

    def refuse_passphrase() -> bytes:
        # Without a callback OpenSSL would prompt on the terminal for the key's passphrase.
        asked_for_passphrase.append(True)
        return b""

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_cert_chain(str(cert), str(key) if key else None, password=refuse_passphrase)
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = _reason(exc)
        if asked_for_passphrase:
            return key_field, "the key is encrypted; give shadowdiff an unencrypted key"
        if "KEY_VALUES_MISMATCH" in reason:
            return key_field, f"the key does not belong to client_cert ({reason})"
        return "client_cert", f"not a usable certificate and key: {reason}"
    # The TLS probe presents the same pair through pyOpenSSL (imported here: it costs a tenth
    # of the CLI's start-up, and only a scenario with a client certificate needs it).
    from OpenSSL import SSL

    probe = SSL.Context(SSL.TLS_METHOD)
    try:
        probe.use_certificate_chain_file(str(cert))
        probe.use_privatekey_file(str(key or cert))
        probe.check_privatekey()
    except SSL.Error as exc:
        return key_field, f"not usable by the TLS probe: {_reason(exc)}"
    return None


def _reason(exc: BaseException) -> str:
    if type(exc).__module__.startswith("OpenSSL") and exc.args and isinstance(exc.args[0], list):
        reasons = [item[-1] for item in exc.args[0] if isinstance(item, tuple) and item[-1]]
        if reasons:
            return "; ".join(reasons)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
