//! The machine the shim models: read once, at the first open of `/dev/iommu` or a VFIO
//! device, from the JSON file named by `VSVA_SHIM_CONFIG` (defaults when unset).
//!
//! ```json
//! {
//!   "ram_mib": 256,
//!   "segment_window_gib": 64,
//!   "vtd": { "pasid_bits": 20, "nested": true, "device_tlb": true, "page_requests": true },
//!   "endpoints": [
//!     { "rid": "00:01.0", "pasid_bits": 20, "ats": true, "pri": true,
//!       "atc_entries": 64, "pri_capacity": 32 }
//!   ],
//!   "emulated": [ {} ]
//! }
//! ```
//! Every field is optional; the IOMMU is VT-d unless `VSVA_SHIM_IOMMU=smmuv3` chooses Arm
//! SMMUv3 ([`crate::host`], which ignores `vtd`); `endpoints[i]` is
//! `/dev/vfio/devices/vfio<i>`, and `emulated[j]`, an emulated copy engine bound through an
//! iommufd access ([`crate::mdev`]), is `/dev/vfio/devices/vfio<endpoints.len() + j>`.

use serde::Deserialize;
use vsva_mem::Rid;

/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "VSVA_SHIM_CONFIG";

const MIB: u64 = 1 << 20;

/// The demo platform reserves its first 256 MiB for the IOMMU driver's tables.
pub const MIN_RAM_MIB: u64 = 256;

/// VFIO devices a configuration may declare, endpoints and emulated devices together (VFIO
/// device numbers are small in practice).
pub const MAX_ENDPOINTS: usize = 64;

/// The largest ATC an endpoint may have. The ATC reserves room for all its entries when it
/// is made, so a larger value could exhaust memory (an abort, not an error); real ATCs hold
/// tens to thousands of entries.
pub const MAX_ATC_ENTRIES: usize = 1 << 16;

/// The shim's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShimConfig {
    /// Model RAM in MiB (sparse: only pages touched cost memory). At least 256.
    pub ram_mib: u64,
    /// Size of the window above RAM where the program's pinned memory and mapped files
    /// appear to the model, in GiB.
    pub segment_window_gib: u64,
    /// The VT-d unit's options.
    pub vtd: VtdOptions,
    /// The demo endpoints, one VFIO device each.
    pub endpoints: Vec<EndpointConfig>,
    /// The emulated devices, one VFIO device each, numbered after the endpoints.
    pub emulated: Vec<EmulatedConfig>,
}

/// One emulated copy engine ([`crate::mdev`]). It has nothing to configure yet: it sits
/// behind no IOMMU, so it has no requester ID, PASID, ATS or PRI; the object is there so
/// that options can be added without changing the format.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatedConfig {}

/// The VT-d options a configuration may change; the rest are `VtdConfig::default()`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VtdOptions {
    /// PASID width in bits (1..=20).
    pub pasid_bits: u8,
    /// Nested translation (needed for nested HWPTs).
    pub nested: bool,
    /// Device-TLB (ATS).
    pub device_tlb: bool,
    /// Page requests (PRI).
    pub page_requests: bool,
    /// Second-stage accessed/dirty bits (dirty tracking).
    pub ss_ad: bool,
    /// Caching mode (as a virtual IOMMU sets it).
    pub caching_mode: bool,
}

/// One demo endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointConfig {
    /// Requester ID as `bus:device.function`, hexadecimal bus and device (`00:01.0`).
    pub rid: String,
    /// PASID width in bits (0: no PASID).
    pub pasid_bits: u8,
    /// ATS enabled.
    pub ats: bool,
    /// PRI enabled.
    pub pri: bool,
    /// ATC entries of the device (at most [`MAX_ATC_ENTRIES`]).
    pub atc_entries: usize,
    /// Outstanding page requests the device may have (PRI capacity and allocation).
    pub pri_capacity: u32,
}

impl Default for ShimConfig {
    /// 256 MiB of RAM, a 64 GiB window, the default VT-d unit, two endpoints (`vfio0`,
    /// `vfio1`) and one emulated device (`vfio2`).
    fn default() -> Self {
        ShimConfig {
            ram_mib: MIN_RAM_MIB,
            segment_window_gib: 64,
            vtd: VtdOptions::default(),
            endpoints: vec![
                EndpointConfig::default(),
                EndpointConfig {
                    rid: "00:02.0".into(),
                    ..EndpointConfig::default()
                },
            ],
            emulated: vec![EmulatedConfig::default()],
        }
    }
}

impl Default for VtdOptions {
    fn default() -> Self {
        let d = vsva_vtd::VtdConfig::default();
        VtdOptions {
            pasid_bits: d.pasid_bits,
            nested: d.nested,
            device_tlb: d.device_tlb,
            page_requests: d.page_requests,
            ss_ad: d.ss_ad,
            caching_mode: d.caching_mode,
        }
    }
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            rid: "00:01.0".into(),
            pasid_bits: 20,
            ats: true,
            pri: true,
            atc_entries: 64,
            pri_capacity: 32,
        }
    }
}

/// Parses `bus:device.function` (hexadecimal bus and device, decimal function).
///
/// # Errors
/// A message naming the bad value.
pub fn parse_rid(text: &str) -> Result<Rid, String> {
    let bad = || format!("bad requester ID {text:?} (expected bus:device.function, e.g. 00:01.0)");
    let (bus, rest) = text.split_once(':').ok_or_else(bad)?;
    let (dev, func) = rest.split_once('.').ok_or_else(bad)?;
    let bus = u8::from_str_radix(bus, 16).map_err(|_| bad())?;
    let dev = u8::from_str_radix(dev, 16).map_err(|_| bad())?;
    let func: u8 = func.parse().map_err(|_| bad())?;
    Rid::from_bdf(bus, dev, func).map_err(|_| bad())
}

impl ShimConfig {
    /// Parses and checks a configuration.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(text: &str) -> Result<ShimConfig, String> {
        let cfg: ShimConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        cfg.check()?;
        Ok(cfg)
    }

    /// The configuration `VSVA_SHIM_CONFIG` names, or the default.
    ///
    /// # Errors
    /// A message if the file cannot be read or is not a valid configuration.
    pub fn from_env() -> Result<ShimConfig, String> {
        match std::env::var_os(CONFIG_ENV) {
            None => Ok(ShimConfig::default()),
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.to_string_lossy()))?;
                Self::parse(&text).map_err(|e| format!("{}: {e}", path.to_string_lossy()))
            }
        }
    }

    /// Checks the values.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.ram_mib < MIN_RAM_MIB || self.ram_mib.checked_mul(MIB).is_none() {
            return Err(format!("ram_mib must be at least {MIN_RAM_MIB}"));
        }
        if self.segment_window_gib == 0 || self.segment_window_gib > 1 << 14 {
            return Err("segment_window_gib must be 1..=16384".into());
        }
        if !(1..=20).contains(&self.vtd.pasid_bits) {
            return Err("vtd.pasid_bits must be 1..=20".into());
        }
        if self.endpoints.len().saturating_add(self.emulated.len()) > MAX_ENDPOINTS {
            return Err(format!(
                "at most {MAX_ENDPOINTS} VFIO devices (endpoints and emulated together)"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for ep in &self.endpoints {
            let rid = parse_rid(&ep.rid)?;
            if !seen.insert(rid.raw()) {
                return Err(format!("requester ID {} used twice", ep.rid));
            }
            if ep.pasid_bits > 20 {
                return Err(format!("{}: pasid_bits must be 0..=20", ep.rid));
            }
            if ep.atc_entries > MAX_ATC_ENTRIES {
                return Err(format!(
                    "{}: atc_entries must be at most {MAX_ATC_ENTRIES}",
                    ep.rid
                ));
            }
            if ep.pri && ep.pri_capacity == 0 {
                return Err(format!(
                    "{}: pri_capacity must be non-zero with PRI",
                    ep.rid
                ));
            }
        }
        Ok(())
    }

    /// The VT-d unit's configuration.
    pub fn vtd_config(&self) -> vsva_vtd::VtdConfig {
        vsva_vtd::VtdConfig {
            pasid_bits: self.vtd.pasid_bits,
            nested: self.vtd.nested,
            device_tlb: self.vtd.device_tlb,
            page_requests: self.vtd.page_requests,
            ss_ad: self.vtd.ss_ad,
            caching_mode: self.vtd.caching_mode,
            ..vsva_vtd::VtdConfig::default()
        }
    }

    /// RAM in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.ram_mib * MIB
    }

    /// The segment window in bytes.
    pub fn window_bytes(&self) -> u64 {
        self.segment_window_gib << 30
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_two_endpoints_and_one_emulated_device_on_256_mib() {
        let cfg = ShimConfig::parse("{}").unwrap();
        assert_eq!(cfg, ShimConfig::default());
        assert_eq!(cfg.ram_bytes(), 256 << 20);
        assert_eq!(cfg.endpoints.len(), 2);
        assert_eq!(cfg.emulated.len(), 1);
        assert_eq!(
            parse_rid(&cfg.endpoints[1].rid).unwrap(),
            Rid::from_bdf(0, 2, 0).unwrap()
        );
        assert_eq!(cfg.vtd_config(), vsva_vtd::VtdConfig::default());
    }

    #[test]
    fn fields_override_defaults() {
        let cfg = ShimConfig::parse(
            r#"{"ram_mib": 512, "vtd": {"pasid_bits": 8, "nested": false},
                "endpoints": [{"rid": "3a:1f.7", "pasid_bits": 5, "ats": false}]}"#,
        )
        .unwrap();
        assert_eq!(cfg.ram_mib, 512);
        assert_eq!(cfg.vtd.pasid_bits, 8);
        assert!(!cfg.vtd.nested && cfg.vtd.device_tlb);
        let ep = &cfg.endpoints[0];
        assert_eq!(
            parse_rid(&ep.rid).unwrap(),
            Rid::from_bdf(0x3a, 0x1f, 7).unwrap()
        );
        assert_eq!(
            (ep.pasid_bits, ep.ats, ep.pri, ep.atc_entries),
            (5, false, true, 64)
        );
        assert!(!cfg.vtd_config().nested);
        assert_eq!(
            cfg.emulated.len(),
            1,
            "emulated devices default when not given"
        );
    }

    #[test]
    fn emulated_devices_are_a_list_of_objects() {
        let cfg = ShimConfig::parse(r#"{"emulated": [{}, {}, {}]}"#).unwrap();
        assert_eq!(cfg.emulated.len(), 3);
        let none = ShimConfig::parse(r#"{"emulated": []}"#).unwrap();
        assert!(none.emulated.is_empty());
        let full = format!(
            r#"{{"endpoints": [], "emulated": [{}]}}"#,
            vec!["{}"; MAX_ENDPOINTS].join(",")
        );
        assert_eq!(
            ShimConfig::parse(&full).unwrap().emulated.len(),
            MAX_ENDPOINTS
        );
        // with the two default endpoints, one device too many
        let over = format!(
            r#"{{"emulated": [{}]}}"#,
            vec!["{}"; MAX_ENDPOINTS - 1].join(",")
        );
        assert!(ShimConfig::parse(&over).is_err());
    }

    #[test]
    fn bad_configurations_are_refused() {
        for bad in [
            r#"{"ram_mib": 128}"#,
            r#"{"ram_mib": 18446744073709551615}"#,
            r#"{"segment_window_gib": 0}"#,
            r#"{"vtd": {"pasid_bits": 21}}"#,
            r#"{"endpoints": [{"rid": "00:01.0"}, {"rid": "00:01.0"}]}"#,
            r#"{"endpoints": [{"rid": "0001.0"}]}"#,
            r#"{"endpoints": [{"rid": "00:20.0"}]}"#,
            r#"{"endpoints": [{"rid": "00:01.8"}]}"#,
            r#"{"endpoints": [{"pasid_bits": 21}]}"#,
            r#"{"endpoints": [{"pri_capacity": 0}]}"#,
            // an ATC this large would abort the program when the machine is built
            r#"{"endpoints": [{"atc_entries": 65537}]}"#,
            r#"{"endpoints": [{"atc_entries": 1000000000000}]}"#,
            r#"{"endpoints": [{"atc_entries": 18446744073709551615}]}"#,
            r#"{"unknown": 1}"#,
            r#"{"emulated": [{"rid": "00:03.0"}]}"#,
            r#"{"emulated": 1}"#,
            "not json",
        ] {
            assert!(ShimConfig::parse(bad).is_err(), "{bad}");
        }
        let largest = format!(r#"{{"endpoints": [{{"atc_entries": {MAX_ATC_ENTRIES}}}]}}"#);
        assert!(ShimConfig::parse(&largest).is_ok());
    }
}
