"""DIMSE client over ``pynetdicom``: C-FIND (study/series/image), C-GET or C-MOVE, C-STORE.

C-GET answers on the same association (no storage SCP port to open on our side), so the peer only
needs to know our calling AE title. For a PACS without C-GET, ``retrieve: move`` runs a storage SCP
on ``move_port`` for the duration of each retrieval and asks for a C-MOVE to our AE title. A
fresh study is fetched with one study-level request; a partial one (a resumed pull) instance by
instance, for the missing instances only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from medzsad.config.pacs import DimseEndpoint
from medzsad.errors import (
    PacsError,
    PacsRefusedError,
    PacsSendError,
    PacsSendRefusedError,
    PacsUnreachableError,
)
from medzsad.io.guard import quiet_library_log
from medzsad.pacs.auth import dimse_endpoint, dimse_ssl_context
from medzsad.pacs.client import InstanceRef
from medzsad.pacs.dimse_contexts import NATIVE_SYNTAXES, decodable_syntaxes, propose_contexts

__all__ = ["DimseClient"]

_PENDING = (0xFF00, 0xFF01)
#: C-MOVE sends to one storage SCP port: retrievals by C-MOVE take turns.
_MOVE_LOCK = threading.Lock()
_GET_PENDING = 0xFF00
#: Storage classes offered for C-GET when the peer's C-FIND does not report the SOP classes.
_FALLBACK_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
)


class DimseClient:
    """A DICOM peer reached with DIMSE.

    Args:
        endpoint: Host, port, called and calling AE titles, TLS and timeout.
    """

    def __init__(self, endpoint: DimseEndpoint) -> None:
        self._cfg = endpoint
        self.endpoint = dimse_endpoint(endpoint.ae_title, endpoint.host, endpoint.port)

    def _error(self, message: str, study_uid: str = "", send: bool = False) -> PacsError:
        kind = PacsSendError if send else PacsError
        where = self.endpoint + (f", study {study_uid}" if study_uid else "")
        return kind(f"{where}: {message}", endpoint=self.endpoint, study_uid=study_uid)

    def _associate(
        self,
        contexts: Sequence[str],
        *,
        study_uid: str = "",
        get_classes: Sequence[str] = (),
        on_store: Callable[[Dataset], int] | None = None,
        send: bool = False,
        store_classes: Sequence[str] = (),
    ) -> Association:
        cfg = self._cfg
        ae = AE(ae_title=cfg.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = cfg.timeout_s
        ae.connection_timeout = cfg.timeout_s
        propose_contexts(ae, contexts, get_classes, store_classes)
        roles: list[Any] = [build_role(uid, scp_role=True) for uid in get_classes]
        handlers: list[Any] = []
        if on_store is not None:
            store = on_store

            def handle(event: evt.Event) -> int:
                ds = event.dataset
                ds.file_meta = event.file_meta
                return store(ds)

            handlers.append((evt.EVT_C_STORE, handle))
        tls = (dimse_ssl_context(cfg.tls), cfg.host) if cfg.tls is not None else None
        # The A-ASSOCIATE-RJ PDU is kept as it arrives: when the peer closes the connection right
        # after it (Orthanc does), pynetdicom may report the association aborted, not rejected.
        rejections: list[A_ASSOCIATE_RJ] = []
        opened: list[bool] = []
        handlers.append((evt.EVT_PDU_RECV, lambda event: _keep_rejection(event.pdu, rejections)))
        handlers.append((evt.EVT_CONN_OPEN, lambda event: opened.append(True)))
        with quiet_library_log("pynetdicom"):
            assoc = ae.associate(
                cfg.host,
                cfg.port,
                ae_title=cfg.ae_title,
                ext_neg=roles or None,
                tls_args=tls,
                evt_handlers=handlers,
            )
        if rejections or assoc.is_rejected:
            raise self._refusal(rejections, study_uid, send)
        if not assoc.is_established:
            why = f"cannot be reached (down, wrong host/port, or no answer within {cfg.timeout_s:g} s)"
            if not opened and not send:  # no TCP connection at all: nothing listens there
                where = self.endpoint + (f", study {study_uid}" if study_uid else "")
                raise PacsUnreachableError(
                    f"{where}: cannot be reached: no connection (nothing listens at {cfg.host}:{cfg.port}, "
                    "or the host is unknown); is the peer up and the address right?",
                    endpoint=self.endpoint,
                    study_uid=study_uid,
                )
            raise self._error(why, study_uid, send)
        return assoc

    def _refusal(self, rejections: list[A_ASSOCIATE_RJ], study_uid: str, send: bool) -> PacsRefusedError:
        """The error for a rejected association, naming the side the peer refused (PS3.8 9.3.4)."""
        cfg = self._cfg
        rj = rejections[0] if rejections else None
        source, reason = (rj.source, rj.reason_diagnostic) if rj is not None else (None, None)
        if (source, reason) == (1, 3):
            side, why = "calling AE", f"it does not know our AE title {cfg.calling_ae!r} (the calling AE)"
            hint = f"ask its administrators to add {cfg.calling_ae} at this host, or set calling_ae"
        elif (source, reason) == (1, 7):
            side, why = "called AE", f"it is not AE title {cfg.ae_title!r} (the called AE)"
            hint = "check ae_title (the peer's own AE title)"
        else:
            text = rj.reason_str if rj is not None else "no reason given"
            side, why = "association", f"{text}"
            hint = f"check ae_title and that it knows our AE {cfg.calling_ae}"
        kind = PacsSendRefusedError if send else PacsRefusedError
        where = self.endpoint + (f", study {study_uid}" if study_uid else "")
        return kind(
            f"{where}: rejected the association: {why}; {hint} (not retried)",
            endpoint=self.endpoint,
            study_uid=study_uid,
            side=side,
        )

    def _find(self, query: Dataset, study_uid: str = "") -> Iterator[Dataset]:
        assoc = self._associate([StudyRootQueryRetrieveInformationModelFind], study_uid=study_uid)
        try:
            for status, identifier in _quietly(
                assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
            ):
                code = int(getattr(status, "Status", -1))
                if code in _PENDING and identifier is not None:
                    yield identifier
                elif code != 0x0000:
                    raise self._error(
                        f"C-FIND at {query.QueryRetrieveLevel} level failed (status 0x{code & 0xFFFF:04X}"
                        + ("; no answer in time" if code == -1 else "")
                        + ")",
                        study_uid,
                    )
        finally:
            assoc.release()

    def find_studies(self, query: dict[str, str]) -> list[str]:
        """StudyInstanceUIDs matching a study-level C-FIND."""
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = ""
        try:
            for key, value in query.items():
                setattr(ds, key, value)
        except (ValueError, TypeError) as e:
            raise self._error(f"bad query key {key!r} ({e}); use DICOM keywords, e.g. StudyDate") from e
        return sorted({str(i.StudyInstanceUID) for i in self._find(ds) if i.get("StudyInstanceUID")})

    def list_instances(self, study_uid: str) -> list[InstanceRef]:
        """The instances of a study: a SERIES-level C-FIND, then an IMAGE-level one per series."""
        q = Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = study_uid
        q.SeriesInstanceUID = ""
        series = sorted({str(s.SeriesInstanceUID) for s in self._find(q, study_uid)})
        refs = []
        for series_uid in series:
            q = Dataset()
            q.QueryRetrieveLevel = "IMAGE"
            q.StudyInstanceUID = study_uid
            q.SeriesInstanceUID = series_uid
            q.SOPInstanceUID = ""
            q.SOPClassUID = ""
            for i in self._find(q, study_uid):
                got = str(i.get("StudyInstanceUID", study_uid))
                if got != study_uid:
                    raise self._error(f"asked for the instances of this study, got study {got}", study_uid)
                refs.append(
                    InstanceRef(study_uid, series_uid, str(i.SOPInstanceUID), str(i.get("SOPClassUID", "")))
                )
        return refs

    def _check(
        self, responses: Iterable[tuple[Dataset, Any]], what: str, query: Dataset, study_uid: str
    ) -> None:
        """Consume C-GET/C-MOVE responses; anything but success in the end is a PacsError."""
        for status, _ in _quietly(responses):
            code = int(getattr(status, "Status", -1))
            if code == _GET_PENDING:
                continue
            if code != 0x0000:
                failed = int(getattr(status, "NumberOfFailedSuboperations", 0) or 0)
                raise self._error(
                    f"{what} at {query.QueryRetrieveLevel} level failed (status 0x{code & 0xFFFF:04X}, "
                    f"{failed} failed sub-operations" + ("; no answer in time" if code == -1 else "") + ")",
                    study_uid,
                )

    def retrieve(
        self, refs: Sequence[InstanceRef], sink: Callable[[Dataset], None], *, whole_study: bool = False
    ) -> None:
        """C-GET (or C-MOVE) ``refs`` of one study: one study-level request if ``whole_study``."""
        if not refs:
            return
        study_uid = refs[0].study_uid
        classes = sorted({r.sop_class_uid for r in refs if r.sop_class_uid}) or list(_FALLBACK_CLASSES)
        problems: list[Exception] = []

        def on_store(ds: Dataset) -> int:
            try:
                sink(ds)
            except Exception as e:  # reported after the C-GET; the peer is told the store failed
                problems.append(e)
                return 0xC211
            return 0x0000

        if self._cfg.retrieve == "move":
            self._move(refs, whole_study, classes, on_store, problems)
            return
        assoc = self._associate(
            [StudyRootQueryRetrieveInformationModelGet],
            study_uid=study_uid,
            get_classes=classes,
            on_store=on_store,
        )
        try:
            for query in _get_queries(refs, whole_study):
                self._check(
                    assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet),
                    "C-GET",
                    query,
                    study_uid,
                )
                if problems:
                    raise problems[0]
        finally:
            assoc.release()

    def _move(
        self,
        refs: Sequence[InstanceRef],
        whole_study: bool,
        classes: Sequence[str],
        on_store: Callable[[Dataset], int],
        problems: list[Exception],
    ) -> None:
        """C-MOVE to our own storage SCP on ``move_port`` (one study at a time: one port)."""
        cfg = self._cfg
        study_uid = refs[0].study_uid
        scp = AE(ae_title=cfg.calling_ae)
        scp.acse_timeout = scp.dimse_timeout = scp.network_timeout = cfg.timeout_s
        for uid in classes:
            scp.add_supported_context(uid, (*NATIVE_SYNTAXES, *decodable_syntaxes()))  # the PACS proposes

        def handle(event: evt.Event) -> int:
            ds = event.dataset
            ds.file_meta = event.file_meta
            return on_store(ds)

        with _MOVE_LOCK:
            try:
                server = scp.start_server(
                    (cfg.move_bind, int(cfg.move_port or 0)),
                    block=False,
                    evt_handlers=[(evt.EVT_C_STORE, handle)],
                )
            except OSError as e:
                raise self._error(f"cannot listen on port {cfg.move_port} for C-MOVE ({e})", study_uid) from e
            try:
                assoc = self._associate([StudyRootQueryRetrieveInformationModelMove], study_uid=study_uid)
                try:
                    for query in _get_queries(refs, whole_study):
                        answers = assoc.send_c_move(
                            query, cfg.calling_ae, StudyRootQueryRetrieveInformationModelMove
                        )
                        self._check(answers, "C-MOVE", query, study_uid)
                        if problems:
                            raise problems[0]
                finally:
                    assoc.release()
            finally:
                if server is not None:
                    server.shutdown()

    def store(self, files: Iterable[Path]) -> None:
        """C-STORE each file on one association."""
        paths = list(files)
        if not paths:
            return
        heads = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
        study_uid = str(heads[0].StudyInstanceUID)
        classes = sorted({str(h.SOPClassUID) for h in heads})
        assoc = self._associate([], study_uid=study_uid, get_classes=(), send=True, store_classes=classes)
        try:
            for path, head in zip(paths, heads, strict=True):
                with quiet_library_log("pynetdicom"):
                    status = assoc.send_c_store(path)
                code = int(getattr(status, "Status", -1))
                if code not in (0x0000, 0xB000, 0xB007, 0xB006):
                    raise self._error(
                        f"C-STORE of {head.SOPInstanceUID} failed (status 0x{code & 0xFFFF:04X}"
                        + ("; no answer in time" if code == -1 else "")
                        + ")",
                        study_uid,
                        send=True,
                    )
        finally:
            assoc.release()


def _keep_rejection(pdu: object, rejections: list[A_ASSOCIATE_RJ]) -> None:
    if isinstance(pdu, A_ASSOCIATE_RJ):
        rejections.append(pdu)


def _quietly(answers: Iterable[Any]) -> Iterator[Any]:
    """The answers of a DIMSE request, pynetdicom's own ERROR lines silenced while they come in."""
    it = iter(answers)
    while True:
        with quiet_library_log("pynetdicom"):
            try:
                item = next(it)
            except StopIteration:
                return
        yield item


def _get_queries(refs: Sequence[InstanceRef], whole_study: bool) -> Iterator[Dataset]:
    """One study-level query for a whole study; else one IMAGE-level query per instance."""
    if whole_study:
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = refs[0].study_uid
        yield q
        return
    for r in refs:
        q = Dataset()
        q.QueryRetrieveLevel = "IMAGE"
        q.StudyInstanceUID = r.study_uid
        q.SeriesInstanceUID = r.series_uid
        q.SOPInstanceUID = r.sop_uid
        yield q
