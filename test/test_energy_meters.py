"""Meters on sysfs trees made in tmp_path: RAPL wrap-around and permissions, INA3221, battery, NVML."""
import logging
from pathlib import Path

import pytest

from effdl_ros.energy.meters import BatteryMeter, Ina3221Meter, MeterError, NvmlMeter, RaplMeter, detect_meter


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def write(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")


def rapl_tree(root: Path, pkg_uj=0, dram_uj=0, max_uj=1_000_000):
    write(root / "intel-rapl:0" / "name", "package-0")
    write(root / "intel-rapl:0" / "energy_uj", pkg_uj)
    write(root / "intel-rapl:0" / "max_energy_range_uj", max_uj)
    write(root / "intel-rapl:0" / "intel-rapl:0:0" / "name", "core")  # inside the package: not added
    write(root / "intel-rapl:0" / "intel-rapl:0:0" / "energy_uj", 0)
    write(root / "intel-rapl:0" / "intel-rapl:0:1" / "name", "dram")
    write(root / "intel-rapl:0" / "intel-rapl:0:1" / "energy_uj", dram_uj)
    write(root / "intel-rapl:0" / "intel-rapl:0:1" / "max_energy_range_uj", max_uj)


def test_rapl_sums_package_and_dram_and_handles_wrap(tmp_path):
    clock = Clock()
    rapl_tree(tmp_path, pkg_uj=900_000, dram_uj=100_000)
    m = RaplMeter(tmp_path, clock=clock)
    assert m.name == "rapl:package-0+dram"
    m.start()
    clock.t = 1.0
    write(tmp_path / "intel-rapl:0" / "energy_uj", 200_000)          # wrapped: +0.3 J
    write(tmp_path / "intel-rapl:0" / "intel-rapl:0:1" / "energy_uj", 150_000)  # +0.05 J
    r = m.read()
    assert r.energy_j == pytest.approx(0.35) and r.power_w == pytest.approx(0.35)
    clock.t = 2.0
    write(tmp_path / "intel-rapl:0" / "energy_uj", 700_000)
    r = m.read()
    assert r.energy_j == pytest.approx(0.85) and r.power_w == pytest.approx(0.5)


def test_rapl_permission_denied_says_why(tmp_path, monkeypatch):
    rapl_tree(tmp_path)
    m = RaplMeter(tmp_path)
    real = Path.read_text

    def deny(self, *a, **k):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(self, *a, **k)

    import os
    real_open = os.open

    def deny_open(path, *a, **k):
        if str(path).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr(Path, "read_text", deny)
    monkeypatch.setattr(os, "open", deny_open)
    with pytest.raises(MeterError, match="root-only since CVE-2020-8694"):
        m.start()


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(MeterError, match="no RAPL package"):
        RaplMeter(tmp_path)
    rapl_tree(tmp_path)
    write(tmp_path / "intel-rapl:0" / "energy_uj", "garbage")
    with pytest.raises(MeterError, match="energy_uj: expected a number"):
        RaplMeter(tmp_path).start()


def test_counter_going_backwards_without_a_range_is_dropped(caplog):
    class Fake(NvmlMeter.__mro__[1]):  # the Meter base class
        name, is_counter = "fake", True
        values = [10.0, 12.0, 5.0, 6.0]

        def _counter_j(self):
            return [(self.values.pop(0), None)]

    m = Fake(clock=Clock())
    m.start()
    assert m.read().energy_j == pytest.approx(2.0)
    with caplog.at_level(logging.WARNING):
        assert m.read().energy_j == pytest.approx(2.0)
    assert "went backwards" in caplog.text
    assert m.read().energy_j == pytest.approx(3.0)


def ina_tree(root: Path):
    hw = root / "hwmon3"
    write(hw / "name", "ina3221")
    for i, (label, mv, ma) in enumerate([("VDD_IN", 5000, 1200), ("VDD_CPU_GPU_CV", 5000, 400)], start=1):
        write(hw / f"in{i}_label", label)
        write(hw / f"in{i}_input", mv)
        write(hw / f"curr{i}_input", ma)
    write(root / "hwmon0" / "name", "acpitz")


def test_ina3221_reads_the_input_rail_and_integrates(tmp_path):
    ina_tree(tmp_path)
    clock = Clock()
    m = Ina3221Meter(tmp_path, clock=clock)
    assert m.name == "ina3221:VDD_IN"
    m.start()
    clock.t = 2.0
    r = m.read()
    assert r.power_w == pytest.approx(6.0) and r.energy_j == pytest.approx(12.0)
    both = Ina3221Meter(tmp_path, rail=None, clock=clock)
    both.start()
    assert both.read().power_w == pytest.approx(8.0)
    with pytest.raises(MeterError, match="rail 'VDD_X' not found"):
        Ina3221Meter(tmp_path, rail="VDD_X")


def battery_tree(root: Path, status="Discharging", power_uw=None):
    bat = root / "BAT0"
    write(root / "AC" / "type", "Mains")
    write(bat / "type", "Battery")
    write(bat / "status", status)
    write(bat / "capacity", 80)
    write(bat / "voltage_now", 12_000_000)   # 12 V
    write(bat / "current_now", 500_000)      # 0.5 A
    write(bat / "energy_now", 50_000_000)    # 50 Wh
    if power_uw is not None:
        write(bat / "power_now", power_uw)


def test_battery_state_and_discharge_power(tmp_path):
    battery_tree(tmp_path)
    clock = Clock()
    m = BatteryMeter(tmp_path, clock=clock)
    s = m.state()
    assert s.state_of_charge == pytest.approx(0.8)
    assert s.energy_remaining_j == pytest.approx(50 * 3600)
    assert s.discharge_power_w == pytest.approx(6.0)   # current x voltage
    write(tmp_path / "BAT0" / "power_now", 7_000_000)
    assert m.state().discharge_power_w == pytest.approx(7.0)
    write(tmp_path / "BAT0" / "status", "Charging")
    assert m.state().discharge_power_w == 0.0
    with pytest.raises(MeterError, match="no power supply of type Battery"):
        BatteryMeter(tmp_path / "AC")


class FakeNvml:
    def __init__(self, energy=True):
        self.energy, self.mj, self.mw = energy, 1000, 150_000

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, i):
        if i != 0:
            raise RuntimeError("Invalid Argument")
        return "h"

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.energy:
            raise RuntimeError("Not Supported")
        return self.mj

    def nvmlDeviceGetPowerUsage(self, h):
        return self.mw


def test_nvml_energy_counter_and_power_fallback():
    clock = Clock()
    fake = FakeNvml()
    m = NvmlMeter(nvml=fake, clock=clock)
    assert m.name == "nvml:0:energy"
    m.start()
    clock.t, fake.mj = 2.0, 301_000
    r = m.read()
    assert r.energy_j == pytest.approx(300.0) and r.power_w == pytest.approx(150.0)
    p = NvmlMeter(nvml=FakeNvml(energy=False), clock=clock)
    assert p.name == "nvml:0:power"
    p.start()
    clock.t = 4.0
    assert p.read().energy_j == pytest.approx(300.0)
    with pytest.raises(MeterError, match="cannot open GPU 3"):
        NvmlMeter(3, nvml=fake)


def test_detect_meter_order_and_fallback(tmp_path):
    empty = tmp_path / "none"
    meter, why = detect_meter(rapl_root=empty, hwmon_root=empty, power_supply_root=empty, use_nvml=False)
    assert meter is None and set(why) == {"nvml", "rapl", "ina3221", "battery"}
    battery_tree(tmp_path / "ps")
    ina_tree(tmp_path / "hw")
    meter, why = detect_meter(rapl_root=empty, hwmon_root=tmp_path / "hw", power_supply_root=tmp_path / "ps",
                              use_nvml=False)
    assert meter.name == "ina3221:VDD_IN" and "rapl" in why
    meter, _ = detect_meter(rapl_root=empty, hwmon_root=tmp_path / "hw", nvml=FakeNvml())
    assert meter.name == "nvml:0:energy"


def test_rapl_counts_each_zone_once_when_sysfs_lists_it_twice(tmp_path):
    rapl_tree(tmp_path, pkg_uj=0, dram_uj=0)
    # real sysfs also lists every sub-zone at the top level (symlinks), and a psys zone
    (tmp_path / "intel-rapl:0:1").symlink_to(tmp_path / "intel-rapl:0" / "intel-rapl:0:1")
    write(tmp_path / "intel-rapl:1" / "name", "psys")
    write(tmp_path / "intel-rapl:1" / "energy_uj", 0)
    clock = Clock()
    m = RaplMeter(tmp_path, clock=clock)
    assert m.name == "rapl:package-0+dram"
    m.start()
    write(tmp_path / "intel-rapl:0" / "intel-rapl:0:1" / "energy_uj", 1_000)
    clock.t = 1.0
    assert m.read().energy_j == pytest.approx(0.001)


def test_nvml_check_prints_measured_json(monkeypatch, tmp_path, capsys):
    import json
    import sys

    from effdl_ros.energy import nvml_check

    fake = FakeNvml()
    fake.nvmlDeviceGetName = lambda h: "Fake GPU"
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    out = tmp_path / "nvml.json"
    assert nvml_check.main(["--idle", "0.1", "--load", "0.1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["meter"] == "nvml:0:energy" and data["gpu"] == "Fake GPU" and data["source"] == "measured"
    assert data["idle"]["reads"] >= 2 and data["idle"]["energy_j"] == 0.0  # the fake counter never moves
