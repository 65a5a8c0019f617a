//! Development probe: load the sensor, track a pid given on the command line, print
//! decoded events for a few seconds. Not part of the product.
use mcpwatch::{
    event::raw,
    sensor::{
        ebpf::{Sensor, SensorOptions},
        offsets,
    },
};
use monitor_common::{role, task_flags, TaskState};

fn main() {
    let pid: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let kcfg = offsets::resolve().expect("offsets");
    println!("{kcfg:?}");
    let mut s = Sensor::load(
        &SensorOptions {
            ring_buffer_bytes: 1 << 24,
            tracked_max: 65536,
            pin_dir: "/sys/fs/bpf/mcpwatch-probe".into(),
            state_dir: "/tmp/mcpwatch-probe".into(),
            pin_links: true,
        },
        kcfg,
        &mcpwatch::sensor::ebpf::KernelHosts::default(),
    )
    .expect("load");
    println!("lsm: {:?}", s.lsm);
    if pid != 0 {
        s.track(
            pid,
            &TaskState {
                role: role::HOST,
                flags: task_flags::FIRST_EXEC_IS_HOST,
                host_pid: pid,
                host_profile: 0,
                session_pid: 0,
                parent_pid: 0,
            },
        )
        .unwrap();
    }
    let mut rb = s.take_events().unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(8);
    while std::time::Instant::now() < end {
        while let Some(item) = rb.next() {
            match raw::decode(&item) {
                Ok(raw::RawEvent::Exec(e)) => println!("EXEC pid={} tid={} role={:?} prev={:?} flags={:#x} file={:?} exe={:?} cwd={:?} argv={:?} env_n={} exe={:?}", e.common.pid, e.common.tid, e.common.role, e.prev_role, e.common.flags, String::from_utf8_lossy(&e.filename), e.exe_path.as_ref().map(|p| String::from_utf8_lossy(p).into_owned()), e.cwd.as_ref().map(|p| String::from_utf8_lossy(p).into_owned()), e.argv.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>(), e.env.len(), e.exe),
                Ok(ev) => println!("{ev:?}"),
                Err(e) => println!("decode error {e}"),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    println!("{:?}", s.counters());
}
