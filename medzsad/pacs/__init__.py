"""PACS in and out: pull studies over DICOMweb or DIMSE, push SEG, Parametric Map and SR back.

* :mod:`medzsad.pacs.client`: the client interface, instance references, retries with backoff.
* :mod:`medzsad.pacs.dicomweb`: QIDO-RS / WADO-RS / STOW-RS through ``dicomweb-client``.
* :mod:`medzsad.pacs.dimse`: C-FIND / C-GET / C-STORE through ``pynetdicom``.
* :mod:`medzsad.pacs.pull`: resumable, bounded-parallel pull into a local folder.

Sending a run's outputs, recorded in its ledger so a rerun sends nothing twice, belongs to runs:
:mod:`medzsad.cohort.push`.
"""
