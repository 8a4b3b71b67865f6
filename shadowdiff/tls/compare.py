"""Compare the TLS posture of both entry points for one hostname: meaning, not byte equality.
Pure: postures and settings in, differences out.

Rules (severity): a hostname not covered or a chain that does not verify, on either side (error);
another issuer (warning); a candidate certificate expired or expiring within the error window
(error), or within the warning window (warning), where the baseline's does not (both expiring
soon is no regression of the candidate: info); a weaker key or signature hash (error); a
protocol version or cipher family the baseline accepts and the candidate refuses (warning, error
when clients need it); a weak one the candidate accepts and the baseline does not (warning);
HTTP/2 lost (warning); another answer to a handshake with no SNI or an unknown one (warning); a
re-issued certificate (info).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shadowdiff.difference import Difference, DifferenceKind, Severity
from shadowdiff.tls.probe import DefaultCertificate, TlsPosture

# Accepting these is a weakness, not a feature: the candidate should not start.
WEAK_PROTOCOLS: Final = frozenset({"TLSv1.0", "TLSv1.1"})
WEAK_CIPHER_FAMILIES: Final = frozenset({"RSA"})


@dataclass(frozen=True, slots=True)
class TlsRules:
    # After cutover nobody renews a certificate on a data plane they are still learning: a week
    # is too little to notice and fix, a month is enough to plan it.
    expiry_error_days: int = 7
    expiry_warning_days: int = 30
    needed_versions: frozenset[str] = frozenset()
    needed_cipher_families: frozenset[str] = frozenset()


def _expiry(
    baseline_days: int | None, candidate_days: int | None, rules: TlsRules
) -> Severity | None:
    """How much the candidate certificate's expiry matters, or None when it does not."""
    if candidate_days is None:
        return None
    if candidate_days < 0:
        return "error"
    windows: tuple[tuple[int, Severity], ...] = (
        (rules.expiry_error_days, "error"),
        (rules.expiry_warning_days, "warning"),
    )
    for window, severity in windows:
        if candidate_days < window:
            # The baseline expiring as soon is a renewal to plan, not a regression.
            baseline_too = baseline_days is not None and baseline_days < window
            return "info" if baseline_too else severity
    return None


def _state(ok: bool, reason: str | None = None) -> str:
    return "ok" if ok else (reason or "fails")


def compare_tls(baseline: TlsPosture, candidate: TlsPosture, rules: TlsRules) -> list[Difference]:
    if baseline.failure or candidate.failure:
        if (baseline.failure is None) == (candidate.failure is None):
            return []
        return [
            Difference(
                "tls_handshake",
                "handshake",
                baseline.failure or "ok",
                candidate.failure or "ok",
                "error",
            )
        ]
    differences = _certificate(baseline, candidate, rules)
    differences += _accepted(
        "tls_protocol", baseline.versions, candidate.versions, rules.needed_versions, WEAK_PROTOCOLS
    )
    differences += _accepted(
        "tls_cipher",
        baseline.cipher_families,
        candidate.cipher_families,
        rules.needed_cipher_families,
        WEAK_CIPHER_FAMILIES,
    )
    if baseline.alpn == "h2" and candidate.alpn != "h2":
        differences.append(Difference("tls_alpn", "h2", "h2", candidate.alpn or "none", "warning"))
    elif candidate.alpn == "h2" and baseline.alpn != "h2":
        differences.append(Difference("tls_alpn", "h2", baseline.alpn or "none", "h2", "info"))
    for field, before, after in (
        ("no SNI", baseline.no_sni, candidate.no_sni),
        ("unknown SNI", baseline.unknown_sni, candidate.unknown_sni),
    ):
        difference = _default_certificate(field, before, after)
        if difference is not None:
            differences.append(difference)
    return differences


def _certificate(baseline: TlsPosture, candidate: TlsPosture, rules: TlsRules) -> list[Difference]:
    differences = []
    if baseline.verified != candidate.verified:
        differences.append(
            Difference(
                "tls_certificate",
                "verification",
                _state(baseline.verified, baseline.verify_error),
                _state(candidate.verified, candidate.verify_error),
                "error",
            )
        )
    if baseline.hostname_covered != candidate.hostname_covered:
        differences.append(
            Difference(
                "tls_certificate",
                "hostname",
                _covered(baseline),
                _covered(candidate),
                "error",
            )
        )
    before, after = baseline.leaf, candidate.leaf
    if before is None or after is None:
        return differences
    if before.issuer != after.issuer:
        differences.append(
            Difference("tls_certificate", "issuer", before.issuer, after.issuer, "warning")
        )
    expiry = _expiry(baseline.days_to_expiry, candidate.days_to_expiry, rules)
    if expiry is not None:
        days = candidate.days_to_expiry
        assert days is not None
        shown = (
            f"expired {-days} days ago" if days < 0 else f"{after.not_after[:10]} (in {days} days)"
        )
        differences.append(
            Difference("tls_certificate", "expiry", before.not_after[:10], shown, expiry)
        )
    if after.key_strength_bits < before.key_strength_bits:
        differences.append(
            Difference(
                "tls_certificate",
                "key",
                f"{before.key_type} {before.key_bits} ({before.key_strength_bits}-bit strength)",
                f"{after.key_type} {after.key_bits} ({after.key_strength_bits}-bit strength)",
                "error",
            )
        )
    if (
        before.signature_strength_bits is not None
        and after.signature_strength_bits is not None
        and after.signature_strength_bits < before.signature_strength_bits
    ):
        differences.append(
            Difference(
                "tls_certificate",
                "signature_algorithm",
                before.signature_algorithm,
                after.signature_algorithm,
                "error",
            )
        )
    if before.sha256 != after.sha256:
        same_identity = (
            set(before.names) == set(after.names)
            and before.issuer == after.issuer
            and before.key_type == after.key_type
        )
        if same_identity and before.serial != after.serial:
            differences.append(
                Difference(
                    "tls_certificate",
                    "reissued",
                    f"serial {before.serial}, until {before.not_after}",
                    f"serial {after.serial}, until {after.not_after}",
                    "info",
                )
            )
        elif set(before.names) != set(after.names):
            differences.append(
                Difference(
                    "tls_certificate",
                    "names",
                    ", ".join(before.names),
                    ", ".join(after.names),
                    "info",
                )
            )
    return differences


def _covered(posture: TlsPosture) -> str:
    names = ", ".join(posture.leaf.names) if posture.leaf else ""
    return "covered" if posture.hostname_covered else f"not covered by {names or 'any name'}"


def _accepted(
    kind: DifferenceKind,
    baseline: dict[str, bool],
    candidate: dict[str, bool],
    needed: frozenset[str],
    weak: frozenset[str],
) -> list[Difference]:
    differences = []
    for name in baseline.keys() & candidate.keys():
        before, after = baseline[name], candidate[name]
        if before == after:
            continue
        severity: Severity
        if before and not after:
            severity = "error" if name in needed else "warning"
        else:
            # Newly accepted: a weakness when it is a legacy protocol or cipher, else news.
            severity = "warning" if name in weak else "info"
        differences.append(
            Difference(
                kind,
                name,
                "accepted" if before else "refused",
                "accepted" if after else "refused",
                severity,
            )
        )
    return sorted(differences, key=lambda d: d.field)


def _default_certificate(
    field: str, baseline: DefaultCertificate | None, candidate: DefaultCertificate | None
) -> Difference | None:
    if baseline is None or candidate is None:
        return None
    if baseline.accepted != candidate.accepted:
        return Difference(
            "tls_default_certificate", field, _default(baseline), _default(candidate), "warning"
        )
    if baseline.accepted and baseline.sha256 != candidate.sha256:
        return Difference(
            "tls_default_certificate", field, _default(baseline), _default(candidate), "info"
        )
    return None


def _default(outcome: DefaultCertificate) -> str:
    if outcome.accepted:
        return f"certificate {outcome.subject}"
    return f"handshake refused ({outcome.error})" if outcome.error else "handshake refused"
