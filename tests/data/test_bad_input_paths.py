"""Paths that leave the data root (../, absolute, symbolic links), broken links and link loops:
each is a problem naming the row or link; nothing outside the root is ever opened."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image
from support.data import make_cfg, png

from thtl_bench.data import cache
from thtl_bench.data.check import check_domain
from thtl_bench.data.sources import read_source


@pytest.fixture
def opened(monkeypatch):
    """Every file the image decoder or the content hasher opens (resolved)."""
    seen: list[Path] = []
    real_open, real_hash = Image.open, cache.sha256_file
    monkeypatch.setattr(Image, "open", lambda p, *a, **k: seen.append(Path(p).resolve()) or real_open(p, *a, **k))
    monkeypatch.setattr(cache, "sha256_file", lambda p: seen.append(Path(p).resolve()) or real_hash(p))
    return seen


def manifest(tmp_path, extra: list[str]) -> Path:
    root = tmp_path / "larynx"
    rows = ["path,label,patient_id"]
    for i in range(4):
        lab = "malignant" if i % 2 else "benign"
        png(root / lab / f"{i}.png", i)
        rows.append(f"{lab}/{i}.png,{lab},P{i}")
    (root / "manifest.csv").write_text("\n".join(rows + extra) + "\n")
    return root


def inside(paths, root: Path) -> bool:
    return all(p.is_relative_to(root.resolve()) for p in paths)


def test_manifest_parent_path_refused_and_not_opened(tmp_path, opened):
    png(tmp_path / "outside.png", 9)
    root = manifest(tmp_path, ["../outside.png,benign,P9", "benign/../../outside.png,benign,P9"])
    rep = check_domain(make_cfg(tmp_path), "larynx")
    out = [p for p in rep["problems"] if p.code == "outside_root"]
    assert [p.path.rsplit("/", 1)[-1] for p in out] == ["manifest.csv:6", "manifest.csv:7"]
    assert "outside the data root" in out[0].message and rep["errors"] == 2 and rep["n"] == 4
    assert opened and inside(opened, root)


def test_manifest_absolute_path_is_a_problem_and_the_check_goes_on(tmp_path, opened):
    png(tmp_path / "abs.png", 9)
    root = manifest(tmp_path, [f"{tmp_path / 'abs.png'},benign,P9", f"{root_abs(tmp_path)}/benign/0.png,benign,P0",
                               "C:\\data\\x.png,benign,P8", "benign/none.png,benign,P7"])
    rep = check_domain(make_cfg(tmp_path), "larynx")
    codes = {p.path.rsplit("/", 1)[-1]: p.code for p in rep["problems"]}
    assert codes == {"manifest.csv:6": "absolute_path", "manifest.csv:7": "absolute_path",
                     "manifest.csv:8": "absolute_path", "manifest.csv:9": "missing_image"}
    absolute = next(p for p in rep["problems"] if p.code == "absolute_path")
    assert "relative" in absolute.fix and rep["n"] == 4 and inside(opened, root)


def root_abs(tmp_path):
    return (tmp_path / "larynx").resolve()


def test_manifest_backslashes_and_dots_name_one_file(tmp_path):
    manifest(tmp_path, [])
    root = tmp_path / "larynx"
    text = (root / "manifest.csv").read_text().replace("benign/0.png", "benign\\0.png").replace("benign/2", "./benign/2")
    (root / "manifest.csv").write_text(text)
    lst = read_source(make_cfg(tmp_path), "larynx")
    assert [s.id for s in lst.samples] == ["benign/0.png", "benign/2.png", "malignant/1.png", "malignant/3.png"]
    assert lst.problems == []


def test_links_out_of_the_root_refused_and_not_opened(tmp_path, opened):
    png(tmp_path / "elsewhere" / "far.png", 8)
    png(tmp_path / "outside.png", 9)
    root = manifest(tmp_path, ["benign/link.png,benign,P9"])
    os.symlink(tmp_path / "outside.png", root / "benign" / "link.png")  # a file link in a class folder
    rep = check_domain(make_cfg(tmp_path), "larynx")
    [out] = [p for p in rep["problems"] if p.code == "outside_root"]
    assert out.path.endswith("manifest.csv:6") and "symbolic link" in out.message
    assert not any(p.code == "orphan_image" for p in rep["problems"])
    # class-folder layout: a linked class folder and a linked file, both leading out
    os.symlink(tmp_path / "elsewhere", root / "M")
    cfg = make_cfg(tmp_path, "larynx", "folders")
    rep = check_domain(cfg, "larynx")
    out = sorted(Path(p.path).name for p in rep["problems"] if p.code == "outside_root")
    assert out == ["M", "link.png"] and inside(opened, root)


def test_link_tables_out_of_the_root_refused(tmp_path, opened):
    root = tmp_path / "fundus"
    for i in range(2):
        png(root / "train_images" / f"id{i}.png", i)
    (tmp_path / "labels.csv").write_text("id_code,diagnosis\nid0,0\nid1,1\n")
    os.symlink(tmp_path / "labels.csv", root / "train.csv")
    lst = read_source(make_cfg(tmp_path, "fundus", "aptos"), "fundus")
    assert [p.code for p in lst.problems if p.severity == "error"] == ["outside_root", "too_few_classes"]
    assert lst.problems[0].path.endswith("train.csv")


def test_broken_links_loops_and_folder_links_are_reported(tmp_path):
    root = tmp_path / "larynx"
    png(root / "benign" / "P1" / "a.png", 1)
    png(root / "malignant" / "b.png", 2)
    os.symlink("nowhere.png", root / "benign" / "gone.png")  # dangling
    os.symlink("..", root / "benign" / "P1" / "up")  # a folder link inside the root (a loop if followed)
    os.symlink("Q", root / "Q")  # a class folder that is a link to itself
    os.symlink("b.png", root / "malignant" / "c.png")  # a file link inside the root: a second name, fine
    lst = read_source(make_cfg(tmp_path, "larynx", "folders"), "larynx")
    got = sorted((p.code, Path(p.path).name) for p in lst.problems)
    assert got == [("broken_link", "Q"), ("broken_link", "gone.png"), ("linked_folder", "up")]
    assert [s.id for s in lst.samples] == ["benign/P1/a.png", "malignant/b.png", "malignant/c.png"]


def test_link_into_a_dvc_cache_is_allowed(tmp_path):
    # `dvc checkout` with cache.type: symlink links every file into the (versioned) cache
    obj = tmp_path / "dvc-cache" / "files" / "md5" / "ab" / ("c" * 30)
    png(tmp_path / "x.png", 3).rename(obj.parent.mkdir(parents=True) or obj)
    root = manifest(tmp_path, [])
    (root / "benign" / "0.png").unlink()
    os.symlink(obj, root / "benign" / "0.png")
    lst = read_source(make_cfg(tmp_path), "larynx")
    assert lst.problems == [] and len(lst.samples) == 4
