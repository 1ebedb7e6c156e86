//! A device's self-description ([`DeviceInfo`]) as text, and how it differs from a
//! model file's.

use std::fmt::Write as _;

use tinyvae_shared::fixed::q16_to_f64;
use tinyvae_shared::model::Model;
use tinyvae_shared::protocol::DeviceInfo;

/// The description, one `key value` line per fact.
pub fn describe(info: &DeviceInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "protocol version  {}", info.protocol_version);
    let _ = writeln!(s, "firmware version  {}", info.firmware_version);
    let _ = writeln!(s, "model             {}", info.model_name);
    let _ = writeln!(s, "model hash        {:#010x}", info.model_hash);
    let _ = writeln!(
        s,
        "input             {}x{}  latent {}  parameters {}",
        info.input_width, info.input_height, info.latent, info.parameters
    );
    let _ = writeln!(s, "threshold         {:.4}", q16_to_f64(info.threshold));
    let _ = writeln!(
        s,
        "flash {} B  static RAM {} B  stack high water {} B",
        info.flash_used, info.ram_static, info.stack_high_water
    );
    s
}

/// What differs between the model a device runs and `model` (hash, name, shape); empty
/// when the device runs it. The threshold is not compared: it can be changed at run time.
pub fn differences(info: &DeviceInfo, model: &Model<'_>) -> Vec<String> {
    let mut differences = Vec::new();
    if model.hash != info.model_hash {
        differences.push(format!(
            "hash: file {:#010x}, device {:#010x}",
            model.hash, info.model_hash
        ));
    }
    if model.name() != info.model_name.as_str() {
        differences.push(format!(
            "name: file {:?}, device {:?}",
            model.name(),
            info.model_name.as_str()
        ));
    }
    let shape = |w: usize, h: usize, l: usize| format!("{w}x{h} latent {l}");
    let file_shape = shape(model.input_width, model.input_height, model.latent);
    let device_shape = shape(
        info.input_width.into(),
        info.input_height.into(),
        info.latent.into(),
    );
    if file_shape != device_shape {
        differences.push(format!("shape: file {file_shape}, device {device_shape}"));
    }
    differences
}
