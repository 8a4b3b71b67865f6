"""Which backend answered one side's request, for requests whose backend is picked at random on
both sides (a weighted canary): compared in proportion over many pairs (see
`shadowdiff.stats.homogeneity`), never pair by pair. Pure."""

from __future__ import annotations

from shadowdiff.compare.observations import decoded_body
from shadowdiff.compare.options import CompareOptions
from shadowdiff.markers import extract_markers
from shadowdiff.observation import Observation


def answered_by(observation: Observation, options: CompareOptions) -> str | None:
    """The service (else the workload) an echo backend says answered, or None: a failure, an
    answer that is no echo, or an echo that names neither."""
    if observation.failure is not None:
        return None
    content = decoded_body(observation, options.decoded_body_limit_bytes).content
    if content is None:
        return None
    markers = extract_markers(observation.headers, content, options.extractors)
    if markers is None:
        return None
    return markers.service or markers.workload
