"""What a run reads, checked before any work: free space (images and labels: test_stages)."""
import pytest

from zoorepro import inputs


def test_disk_space_credits_finished_bins_and_counts_outputs(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    from zoorepro import preprocess
    imgs = [tmp_path / f"img{i}.JPEG" for i in range(10)]
    bins = tmp_path / "bins"
    bins.mkdir()
    for p in imgs[:6]:   # six finished .bin files, one truncated
        (bins / f"{p.stem}.bin").write_bytes(b"\0" * preprocess.BIN_BYTES)
    (bins / "img6.bin").write_bytes(b"\0" * 10)
    Usage = namedtuple("Usage", "total used free")
    need_bins = 4 * preprocess.BIN_BYTES
    need_txt = 2 * 10 * inputs.OUTPUT_BYTES["TXT"]
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(0, 0, int((need_bins + need_txt) * 1.06)))
    inputs.check_free_space(bins, imgs, tmp_path / "results", 2, "TXT")     # just enough
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(0, 0, int(need_bins * 1.06)))
    inputs.check_free_space(bins, imgs)                                     # bins only: fits
    with pytest.raises(Exception, match=r"4 .bin file\(s\) x 150528 bytes \(6 already there\) \+ "
                                        r"2 backend\(s\) x 10 TXT output\(s\)"):
        inputs.check_free_space(bins, imgs, tmp_path / "results", 2, "TXT")
