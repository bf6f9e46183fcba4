//! Opening a multi-hundred-MB safetensors file does not read it: resident
//! memory grows by far less than the file until the tensor is touched, and
//! by about the file's size once it is (showing the measure sees mapped
//! pages, so the first check is not vacuous). Linux only: reads /proc/self/statm.
#![cfg(target_os = "linux")]

use std::io::Write;
use tensor::safetensors::SafetensorsFile;

const MIB: usize = 1 << 20;

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    pages * 4096
}

#[test]
fn mapped_weights_are_not_copied_until_touched() {
    let n = 64 * MIB; // f32 elements: a 256 MiB tensor
    let path = std::env::temp_dir().join(format!("hone-mmap-{}.safetensors", std::process::id()));
    {
        // Stream the file out in 1 MiB chunks, so writing it costs no memory here.
        let mut header = format!(r#"{{"w":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#, n * 4);
        while !(8 + header.len()).is_multiple_of(8) {
            header.push(' ');
        }
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
        f.write_all(header.as_bytes()).unwrap();
        let chunk: Vec<u8> = (0..MIB).map(|i| (i % 7) as u8).collect();
        for _ in 0..(n * 4 / MIB) {
            f.write_all(&chunk).unwrap();
        }
    }
    let file_size = std::fs::metadata(&path).unwrap().len() as usize;

    let before = resident_bytes();
    let file = SafetensorsFile::open(&path).unwrap();
    let w = file.tensor("w").unwrap();
    assert!(w.is_mapped());
    let opened = resident_bytes();
    assert!(
        opened - before < 16 * MIB,
        "opening a {} MiB file made {} MiB resident",
        file_size / MIB,
        (opened - before) / MIB
    );

    let sum: f64 = w.as_f32_slice().unwrap().iter().map(|&x| x as f64).sum();
    assert!(sum.is_finite());
    let touched = resident_bytes();
    assert!(
        touched - before > file_size * 3 / 4,
        "touching every element made only {} MiB resident of {} MiB",
        (touched - before) / MIB,
        file_size / MIB
    );
    drop((w, file));
    std::fs::remove_file(&path).unwrap();
}
