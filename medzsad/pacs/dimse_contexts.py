"""Which transfer syntaxes a DIMSE retrieval offers, so a PACS sends instances as it stores them.

An acceptor chooses one transfer syntax per presentation context. A PACS sends a JPEG 2000
instance as it is stored only when a context offers that syntax alone; otherwise it must transcode
it, which Orthanc and many PACS cannot (the storage sub-operation then fails with 0xC000).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from pydicom.pixels import get_decoder
from pydicom.uid import UID
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES

__all__ = ["NATIVE_SYNTAXES", "decodable_syntaxes", "retrieval_contexts", "propose_contexts"]

#: Native transfer syntaxes (one presentation context carries them all: any can be read).
NATIVE_SYNTAXES = tuple(str(uid) for uid in map(UID, ALL_TRANSFER_SYNTAXES) if not uid.is_compressed)
#: Compressed syntaxes in the order their contexts are offered when fewer fit (commonest in
#: archives first: JPEG 2000 and JPEG lossless, RLE, then lossy JPEG, JPEG-LS and HTJ2K).
_COMPRESSED_ORDER = (
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
)
#: Presentation contexts one association may propose (PS3.8: context ids are odd numbers < 256).
_MAX_CONTEXTS = 128


@functools.cache
def decodable_syntaxes() -> tuple[str, ...]:
    """The compressed syntaxes of :data:`_COMPRESSED_ORDER` that pydicom can decode here (pylibjpeg)."""
    out = []
    for uid in map(UID, _COMPRESSED_ORDER):
        try:
            if get_decoder(uid).is_available:
                out.append(str(uid))
        except NotImplementedError:
            continue
    return tuple(out)


def retrieval_contexts(classes: Sequence[str], reserved: int) -> list[tuple[str, tuple[str, ...]]]:
    """The storage contexts a C-GET proposes for ``classes``: ``(SOP class, transfer syntaxes)``.

    An acceptor chooses one transfer syntax per presentation context, so a PACS sends a JPEG 2000
    instance as it is stored only when a context offers that syntax alone; otherwise it must
    transcode it, which Orthanc and many PACS cannot (the sub-operation fails with 0xC000). So
    each class gets one context of the native syntaxes and one per decodable compressed syntax,
    as many as fit beside the ``reserved`` other contexts (the commonest first).
    """
    per_class = max(1, (_MAX_CONTEXTS - reserved) // max(1, len(classes)))
    compressed = decodable_syntaxes()[: per_class - 1]
    return [(uid, ts) for uid in classes for ts in (NATIVE_SYNTAXES, *((c,) for c in compressed))]


def propose_contexts(
    ae: AE, contexts: Sequence[str], get_classes: Sequence[str], store_classes: Sequence[str]
) -> None:
    """Add an association's requested contexts to ``ae``.

    ``contexts`` (query/retrieve) with the default syntaxes, the C-GET storage contexts of
    ``get_classes`` (:func:`retrieval_contexts`) and, for a push, ``store_classes`` with the native
    syntaxes (our own files are written uncompressed).
    """
    for uid in contexts:
        ae.add_requested_context(uid)
    for uid, syntaxes in retrieval_contexts(get_classes, len(contexts) + len(store_classes)):
        ae.add_requested_context(uid, syntaxes)
    for uid in store_classes:
        ae.add_requested_context(uid, NATIVE_SYNTAXES)
