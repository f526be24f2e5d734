"""Voxel size read from the data: HDF5/Zarr attributes, OME-Zarr, TIFF tags; config wins; bad sizes refused."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from conftest import (
    MEDULLA_H5,
    MEDULLA_SITES_CSV,
    small_volumes,
    synapse_rows,
    write_stack,
)

from synapse_core.data.config import ConfigError, load_dataset_config
from synapse_core.data.dataset import DatasetError, open_dataset
from synapse_core.data.voxel_size import (
    VoxelSize,
    VoxelSizeError,
    from_hdf5,
    from_tiff,
    from_zarr,
    same_voxel_size,
)


def _h5(path, attrs=None, group_attrs=None, seg_attrs=None, key="raw"):
    raw, seg, mask = small_volumes()
    with h5py.File(path, "w") as f:
        f.attrs.update(group_attrs or {})
        f.create_dataset(key, data=raw).attrs.update(attrs or {})
        f.create_dataset("seg", data=seg).attrs.update(seg_attrs or {})
        f.create_dataset("mask", data=mask)
    return path


# ---------------------------------------------------------------------------------------- HDF5


def test_hdf5_resolution_nm_zyx_is_read_in_zyx_order_and_named(tmp_path):
    v = from_hdf5(_h5(tmp_path / "a.h5", {"resolution_nm_zyx": [40, 4, 5]}), "raw")
    assert v.zyx_nm == (40.0, 4.0, 5.0)
    assert v.describe() == "40×4×5 nm (z, y, x) from a.h5:raw attribute resolution_nm_zyx"


def test_hdf5_cremi_resolution_on_the_parent_group_applies_to_its_datasets(tmp_path):
    path = tmp_path / "cremi.h5"
    with h5py.File(path, "w") as f:
        f.create_group("volumes").attrs["resolution"] = [40.0, 4.0, 4.0]
        f.create_dataset("volumes/raw", data=np.zeros((2, 3, 3), np.uint8))
    v = from_hdf5(path, "volumes/raw")
    assert v.zyx_nm == (40.0, 4.0, 4.0) and v.source == "cremi.h5:volumes attribute resolution"


def test_hdf5_resolution_with_axis_order_xyz_is_reordered_to_zyx(tmp_path):
    v = from_hdf5(_h5(tmp_path / "a.h5", {"resolution": [4, 5, 40], "axis_order": "xyz"}), "raw")
    assert v.zyx_nm == (40.0, 5.0, 4.0)


def test_hdf5_voxel_size_with_a_unit_attribute_is_converted_to_nm(tmp_path):
    v = from_hdf5(_h5(tmp_path / "a.h5", {"voxel_size": [0.04, 0.004, 0.004], "unit": "um"}), "raw")
    assert v.zyx_nm == pytest.approx((40.0, 4.0, 4.0))


def test_n5_style_pixel_resolution_is_x_y_z_with_its_unit(tmp_path):
    path = _h5(tmp_path / "a.h5")
    with h5py.File(path, "a") as f:  # HDF5 holds no mappings: the JSON text
        f["raw"].attrs["pixelResolution"] = '{"dimensions": [0.004, 0.005, 0.04], "unit": "um"}'
    assert from_hdf5(path, "raw").zyx_nm == pytest.approx((40.0, 5.0, 4.0))
    store = zarr.open_group(str(tmp_path / "n5.zarr"), mode="w")
    store.create_array("raw", data=np.zeros((2, 3, 3), np.uint8))
    store["raw"].attrs["pixelResolution"] = {"dimensions": [4.0, 5.0, 40.0], "unit": "nm"}
    assert from_zarr(tmp_path / "n5.zarr", "raw").zyx_nm == (40.0, 5.0, 4.0)


def test_hdf5_without_a_voxel_size_attribute_gives_none(tmp_path):
    assert from_hdf5(_h5(tmp_path / "a.h5"), "raw") is None


@pytest.mark.parametrize("bad", [[np.nan, 4, 4], [np.inf, 4, 4], [0, 4, 4], [-8, 4, 4]],
                         ids=["nan", "inf", "zero", "negative"])
def test_unusable_attribute_sizes_are_refused_naming_the_file_and_attribute(tmp_path, bad):
    path = _h5(tmp_path / "bad.h5", {"resolution_nm_zyx": bad})
    with pytest.raises(VoxelSizeError) as err:
        from_hdf5(path, "raw")
    assert str(err.value).startswith("bad.h5:raw attribute resolution_nm_zyx: voxel size [")
    assert "finite number > 0 nm" in str(err.value)


# ---------------------------------------------------------------------------------------- Zarr


def test_zarr_resolution_attribute_on_the_array(tmp_path):
    store = zarr.open_group(str(tmp_path / "v.zarr"), mode="w")
    store.create_array("raw", data=np.zeros((2, 3, 3), np.uint8)).attrs["resolution"] = [50, 4.6, 4.6]
    v = from_zarr(tmp_path / "v.zarr", "raw")
    assert v.zyx_nm == (50.0, 4.6, 4.6) and v.source == "v.zarr:raw attribute resolution"


def _ome(path, scale0, unit="micrometer", level_scale=None, ome_key=False):
    g = zarr.open_group(str(path), mode="w")
    g.create_array("0", data=np.zeros((4, 8, 8), np.uint8))
    g.create_array("1", data=np.zeros((2, 4, 4), np.uint8))
    ms = {
        "version": "0.4",
        "axes": [{"name": "z", "type": "space", "unit": unit}, {"name": "y", "type": "space", "unit": unit},
                 {"name": "x", "type": "space", "unit": unit}],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale0}]},
            {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [2 * s for s in scale0]}]},
        ],
    }
    if level_scale:
        ms["coordinateTransformations"] = [{"type": "scale", "scale": level_scale}]
    g.attrs.update({"ome": {"multiscales": [ms]}} if ome_key else {"multiscales": [ms]})
    return path


def test_ome_zarr_scale_and_axis_units_give_nm_for_the_chosen_level(tmp_path):
    path = _ome(tmp_path / "img.zarr", [0.04, 0.004, 0.004])
    assert from_zarr(path, "0").zyx_nm == pytest.approx((40.0, 4.0, 4.0))
    assert from_zarr(path, "1").zyx_nm == pytest.approx((80.0, 8.0, 8.0))
    assert "img.zarr attribute multiscales (dataset '1')" in from_zarr(path, "1").source


def test_ome_zarr_array_path_inside_the_image_reads_the_group_above(tmp_path):
    path = _ome(tmp_path / "img.zarr", [40, 4, 4], unit="nanometer", level_scale=[1, 2, 2])
    assert from_zarr(path / "0", None).zyx_nm == pytest.approx((40.0, 8.0, 8.0))


def test_ome_zarr_0_5_keeps_multiscales_under_ome(tmp_path):
    path = _ome(tmp_path / "img.zarr", [0.05, 0.0046, 0.0046], ome_key=True)
    assert from_zarr(path, "0").zyx_nm == pytest.approx((50.0, 4.6, 4.6))


# ---------------------------------------------------------------------------------------- TIFF


def test_tiff_resolution_tags_in_centimetres_give_y_and_x_but_no_z(tmp_path):
    p = tmp_path / "s.tif"
    tifffile.imwrite(p, np.zeros((4, 5), np.uint8), resolution=(1e7 / 4.0, 1e7 / 5.0), resolutionunit="CENTIMETER")
    v = from_tiff(p)
    assert v.zyx_nm[0] is None and v.zyx_nm[1:] == pytest.approx((5.0, 4.0)) and not v.complete


def test_imagej_tiff_unit_and_spacing_give_all_three_edges(tmp_path):
    p = tmp_path / "s.tif"
    tifffile.imwrite(p, np.zeros((3, 4, 5), np.uint8), imagej=True, resolution=(1 / 0.0046, 1 / 0.0046),
                     metadata={"axes": "ZYX", "unit": "um", "spacing": 0.05})
    v = from_tiff(p)
    assert v.zyx_nm == pytest.approx((50.0, 4.6, 4.6)) and "ImageJ spacing" in v.source


def test_tiff_without_a_physical_unit_or_with_72_dpi_gives_none(tmp_path):
    plain, dpi = tmp_path / "plain.tif", tmp_path / "dpi.tif"
    tifffile.imwrite(plain, np.zeros((4, 5), np.uint8))  # tifffile writes 1 px per "no unit"
    tifffile.imwrite(dpi, np.zeros((4, 5), np.uint8), resolution=(72, 72), resolutionunit="INCH")
    assert from_tiff(plain) is None and from_tiff(dpi) is None


def test_imagej_zero_spacing_is_refused_naming_the_file(tmp_path):
    p = tmp_path / "zero.tif"
    tifffile.imwrite(p, np.zeros((3, 4, 5), np.uint8), imagej=True, resolution=(1 / 0.004, 1 / 0.004),
                     metadata={"axes": "ZYX", "unit": "um", "spacing": 0.0})
    with pytest.raises(VoxelSizeError, match="zero.tif TIFF tags"):
        from_tiff(p)


def test_a_partial_tiff_size_takes_z_from_a_volume_that_knows_it():
    full = VoxelSize((40.0, 4.0, 4.0), "raw.h5:raw attribute resolution")
    part = VoxelSize((None, 4.0, 4.0), "seg slice_0.tif TIFF tags")
    assert same_voxel_size({"seg": part, "raw": full}, "b").zyx_nm == (40.0, 4.0, 4.0)


# ---------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-4"])
def test_config_voxel_size_nan_inf_zero_negative_is_refused_naming_the_file(tmp_path, value):
    cfg = tmp_path / "synapse_dataset.toml"
    cfg.write_text(f"voxel_size_nm = [{value}, 4, 4]\n")
    with pytest.raises(ConfigError) as err:
        load_dataset_config(tmp_path)
    assert str(err.value).startswith(f"{cfg}: voxel_size_nm: voxel size [")
    assert "NaN, inf, 0 and negative sizes are refused" in str(err.value)


def test_bbox_voxel_size_in_the_config_is_refused_naming_the_bbox_key(tmp_path):
    (tmp_path / "synapse_dataset.toml").write_text("[bboxes.b1]\nvoxel_size_nm = [40, 0, 4]\n")
    with pytest.raises(ConfigError, match=r"\[bboxes.b1\] voxel_size_nm: voxel size \[40, 0, 4\]"):
        load_dataset_config(tmp_path)


# ---------------------------------------------------------------------------------------- datasets


def _config(tmp_path, bboxes: dict, top: str = "") -> None:
    """A config with HDF5 bboxes: ``{name: (h5 file, extra TOML lines)}``, each with the small synapse table."""
    synapse_rows().to_csv(tmp_path / "syn.csv", index=False)
    text = top
    for name, (h5, extra) in bboxes.items():
        text += (f"[bboxes.{name}]\nraw = {{ path = \"{h5.name}\", key = \"raw\" }}\n"
                 f"seg = {{ path = \"{h5.name}\", key = \"seg\" }}\nmask = {{ path = \"{h5.name}\", key = \"mask\" }}\n"
                 f"table = \"syn.csv\"\nlabels = {{ mito = \"none\", vesicle = 6, cleft = \"none\" }}\n{extra}\n")
    (tmp_path / "synapse_dataset.toml").write_text(text)


def test_dataset_reports_the_voxel_size_and_its_source_from_the_data(tmp_path):
    _config(tmp_path, {"sstem": (_h5(tmp_path / "sstem.h5", {"resolution": [40, 4, 4]}), "")})
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    b = ds.bboxes["sstem"]
    assert b.voxel_size_nm == (40.0, 4.0, 4.0) and ds.voxel_size_nm == (40.0, 4.0, 4.0)
    assert "voxel size 40×4×4 nm (z, y, x) from sstem.h5:raw attribute resolution, anisotropy 10" in ds.report.text()


def test_config_voxel_size_wins_over_the_data_and_says_so(tmp_path):
    _config(tmp_path, {"b1": (_h5(tmp_path / "b1.h5", {"resolution": [40, 4, 4]}), "voxel_size_nm = [30, 4, 4]")})
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert ds.bboxes["b1"].voxel_size_nm == (30.0, 4.0, 4.0)
    assert ds.bboxes["b1"].voxel_size_source == "synapse_dataset.toml [bboxes.b1] voxel_size_nm"
    assert ("b1: synapse_dataset.toml [bboxes.b1] voxel_size_nm = 30×4×4 nm (z, y, x) overrides 40×4×4 nm (z, y, x) "
            "from b1.h5:raw attribute resolution") in ds.report.warnings


def test_raw_and_seg_voxel_sizes_that_disagree_exclude_that_bbox_naming_both_files(tmp_path):
    bad = _h5(tmp_path / "bad.h5", {"resolution": [40, 4, 4]}, seg_attrs={"resolution": [8, 8, 8]})
    good = _h5(tmp_path / "good.h5", {"resolution": [40, 4, 4]})
    _config(tmp_path, {"bad": (bad, ""), "good": (good, "")})
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert list(ds.bboxes) == ["good"] and len(ds.synapses) == 3
    (fatal,) = ds.report.fatal
    assert fatal.startswith("bad: the volumes disagree on the voxel size: raw 40×4×4 nm (z, y, x) from bad.h5:raw "
                            "attribute resolution; seg 8×8×8 nm (z, y, x) from bad.h5:seg attribute resolution")
    assert "add under [bboxes.bad] in" in fatal and "voxel_size_nm = [<z>, <y>, <x>]" in fatal


def test_a_nan_attribute_is_fatal_for_its_bbox_unless_the_config_gives_the_size(tmp_path):
    _config(tmp_path, {"nan": (_h5(tmp_path / "nan.h5", {"resolution_nm_zyx": [np.nan, 4, 4]}), "")})
    with pytest.raises(DatasetError) as err:
        open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert "nan: nan.h5:raw attribute resolution_nm_zyx: voxel size [nan, 4, 4] is not usable" in str(err.value)
    _config(tmp_path, {"nan": (tmp_path / "nan.h5", "voxel_size_nm = [40, 4, 4]")})
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert ds.bboxes["nan"].voxel_size_nm == (40.0, 4.0, 4.0) and len(ds.synapses) == 3
    assert any(w.startswith("nan: nan.h5:raw attribute resolution_nm_zyx: voxel size [nan, 4, 4] is not usable")
               for w in ds.report.warnings)


def test_tiff_stack_voxel_size_from_imagej_tags_of_the_first_slice(tmp_path):
    raw, seg, mask = small_volumes()
    for kind, vol in (("raw", raw), ("seg", seg), ("mask", mask)):
        (tmp_path / kind / "b").mkdir(parents=True)
        for z in range(vol.shape[0]):
            tifffile.imwrite(tmp_path / kind / "b" / f"slice_{z}.tif", vol[z], imagej=True,
                             resolution=(1 / 0.004, 1 / 0.004), metadata={"unit": "um", "spacing": 0.04})
    synapse_rows().to_csv(tmp_path / "b.csv", index=False)
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert ds.bboxes["b"].voxel_size_nm == pytest.approx((40.0, 4.0, 4.0))
    assert ds.bboxes["b"].voxel_size_source.startswith("slice_0.tif TIFF tags XResolution/YResolution and ImageJ spacing")


def test_tiff_stack_with_only_in_plane_size_asks_for_z_with_the_line_to_add(tmp_path):
    raw, seg, _ = small_volumes()
    for kind, vol in (("raw", raw), ("seg", seg)):
        (tmp_path / kind / "b").mkdir(parents=True)
        for z in range(vol.shape[0]):
            tifffile.imwrite(tmp_path / kind / "b" / f"slice_{z}.tif", vol[z], resolution=(1e7 / 4.6, 1e7 / 4.6),
                             resolutionunit="CENTIMETER")
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert ds.bboxes["b"].voxel_size_nm is None
    (w,) = [w for w in ds.report.warnings if "no z step" in w]
    assert w.startswith("b: ?×4.6×4.6 nm (z, y, x) from slice_0.tif TIFF tags")
    assert w.endswith(f"add under [bboxes.b] in {tmp_path / 'synapse_dataset.toml'}: voxel_size_nm = [<z>, 4.6, 4.6]")


def test_unknown_voxel_size_is_a_warning_with_the_line_to_add(tmp_path):
    raw, seg, _ = small_volumes()
    write_stack(tmp_path / "raw" / "b", raw)
    write_stack(tmp_path / "seg" / "b", seg)
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert ds.voxel_size_nm is None
    assert any(w.startswith("b: voxel size unknown") and w.endswith("voxel_size_nm = [<z>, <y>, <x>]")
               for w in ds.report.warnings)


@pytest.mark.shared_data
@pytest.mark.skipif(not MEDULLA_H5.exists(), reason=f"shared medulla data not present at {MEDULLA_H5}")
def test_medulla_hdf5_reports_its_voxel_size_from_the_resolution_nm_zyx_attribute(tmp_path):
    (tmp_path / "synapse_dataset.toml").write_text(
        f'[bboxes.medulla]\nraw = {{ path = "{MEDULLA_H5}", key = "raw" }}\n'
        f'seg = {{ path = "{MEDULLA_H5}", key = "gt_bodies" }}\ntable = "{MEDULLA_SITES_CSV}"\n')
    ds = open_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert ds.voxel_size_nm == (10.0, 10.0, 10.0)
    assert ds.bboxes["medulla"].voxel_size_source == "training_sample2.h5:raw attribute resolution_nm_zyx"
    assert ("voxel size 10×10×10 nm (z, y, x) from training_sample2.h5:raw attribute resolution_nm_zyx"
            in ds.report.text())
