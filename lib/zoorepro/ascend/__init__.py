"""Everything Huawei: ais_bench's files (``aisformat``, ``aisclues``) and command lines
(``aiscommands``), ATC and npu-smi (``atc``), shell scripts from templates (``shell``), the kit
for an NPU host (``kit``) and the ingest of what ais_bench wrote there (``ingest``,
``ingestchecks``, ``ingesthost``)."""
