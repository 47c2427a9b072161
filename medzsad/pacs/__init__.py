"""PACS in and out: pull studies over DICOMweb or DIMSE, push SEG, Parametric Map and SR back.

* :mod:`medzsad.pacs.client`: the client interface, instance references, retries with backoff.
* :mod:`medzsad.pacs.dicomweb`: QIDO-RS / WADO-RS / STOW-RS through ``dicomweb-client``.
* :mod:`medzsad.pacs.dimse`: C-FIND / C-GET / C-STORE through ``pynetdicom``.
* :mod:`medzsad.pacs.pull`: resumable, bounded-parallel pull into a local folder.
* :mod:`medzsad.pacs.push`: send a run's DICOM outputs, recorded so a rerun sends nothing twice.
* :mod:`medzsad.pacs.records`: the ``sent_objects`` table of the run ledger.
"""
