//! The program's own mappings, as `/proc/self/maps` lists them (`fs/proc/task_mmu.c`,
//! `show_map_vma()`): `start-end perms offset major:minor inode [path]`, addresses and offset
//! in hex, the inode in decimal.

/// One mapping (VMA) of the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vma {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// `PROT_READ`.
    pub read: bool,
    /// `PROT_WRITE`.
    pub write: bool,
    /// `PROT_EXEC`.
    pub exec: bool,
    /// `MAP_SHARED` (`s`) rather than private (`p`).
    pub shared: bool,
    /// Byte offset in the file of `start`.
    pub offset: u64,
    /// The file's device, major and minor.
    pub dev: (u32, u32),
    /// The file's inode (0 for anonymous memory).
    pub inode: u64,
    /// The path column (may be empty).
    pub path: String,
}

impl Vma {
    /// The `mmap` protection bits.
    pub fn prot(&self) -> libc::c_int {
        let mut prot = libc::PROT_NONE;
        if self.read {
            prot |= libc::PROT_READ;
        }
        if self.write {
            prot |= libc::PROT_WRITE;
        }
        if self.exec {
            prot |= libc::PROT_EXEC;
        }
        prot
    }

    /// The file offset that holds address `va` of the mapping.
    pub fn offset_of(&self, va: u64) -> u64 {
        self.offset + (va - self.start)
    }
}

/// Parses one line; `None` if it is not a mapping line.
pub fn parse_line(line: &str) -> Option<Vma> {
    let mut cols = line.split_ascii_whitespace();
    let (start, end) = cols.next()?.split_once('-')?;
    let perms = cols.next()?.as_bytes();
    let offset = cols.next()?;
    let (major, minor) = cols.next()?.split_once(':')?;
    let inode = cols.next()?;
    let path = cols.collect::<Vec<_>>().join(" ");
    if perms.len() != 4 {
        return None;
    }
    let vma = Vma {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        read: perms[0] == b'r',
        write: perms[1] == b'w',
        exec: perms[2] == b'x',
        shared: perms[3] == b's',
        offset: u64::from_str_radix(offset, 16).ok()?,
        dev: (
            u32::from_str_radix(major, 16).ok()?,
            u32::from_str_radix(minor, 16).ok()?,
        ),
        inode: inode.parse().ok()?,
        path,
    };
    (vma.start < vma.end).then_some(vma)
}

/// Parses a whole maps file, in address order.
pub fn parse(text: &str) -> Vec<Vma> {
    let mut vmas: Vec<Vma> = text.lines().filter_map(parse_line).collect();
    vmas.sort_by_key(|vma| vma.start);
    vmas
}

/// The program's mappings now.
///
/// # Errors
/// The errno of reading `/proc/self/maps`.
pub fn read_self() -> Result<Vec<Vma>, i32> {
    let text = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    Ok(parse(&text))
}

/// The mapping holding `va`.
pub fn find(vmas: &[Vma], va: u64) -> Option<&Vma> {
    let index = vmas.partition_point(|vma| vma.end <= va);
    vmas.get(index).filter(|vma| vma.start <= va)
}

/// `major(dev)` and `minor(dev)` of a `dev_t` (glibc's encoding, `sysmacros.h`).
pub fn dev_parts(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
7f00a0000000-7f00a0021000 rw-p 00000000 00:00 0 
55d4c8e00000-55d4c8e02000 r--p 00001000 fd:01 1312 /usr/bin/cat
7f00b0000000-7f00b0200000 rw-s 00200000 00:01 4711 /memfd:vsva-shim (deleted)
7ffd1c3f0000-7ffd1c411000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn lines_parse_into_mappings() {
        let vmas = parse(SAMPLE);
        assert_eq!(vmas.len(), 4);
        assert_eq!(vmas[0].start, 0x55d4c8e00000);
        assert_eq!(vmas[0].offset, 0x1000);
        assert_eq!(vmas[0].dev, (0xfd, 1));
        assert_eq!(vmas[0].inode, 1312);
        assert!(vmas[0].read && !vmas[0].write && !vmas[0].shared);
        assert_eq!(vmas[0].prot(), libc::PROT_READ);
        let memfd = &vmas[2];
        assert!(memfd.shared && memfd.write);
        assert_eq!(memfd.path, "/memfd:vsva-shim (deleted)");
        assert_eq!(memfd.offset_of(0x7f00b0001000), 0x201000);
        assert_eq!(vmas[3].path, "[stack]");
        assert!(parse_line("garbage").is_none());
        assert!(
            parse_line("1000-1000 rw-p 0 00:00 0").is_none(),
            "empty range"
        );
    }

    #[test]
    fn lookups_find_the_holding_mapping() {
        let vmas = parse(SAMPLE);
        assert_eq!(find(&vmas, 0x7f00a0000000).unwrap().inode, 0);
        assert_eq!(find(&vmas, 0x7f00a0020fff).unwrap().end, 0x7f00a0021000);
        assert!(find(&vmas, 0x7f00a0021000).is_none());
        assert!(find(&vmas, 0).is_none());
        assert!(find(&vmas, u64::MAX).is_none());
    }

    #[test]
    fn device_numbers_split_like_glibc() {
        // makedev(0xfd, 1) and makedev(0x103, 0x12345)
        assert_eq!(dev_parts(0xfd01), (0xfd, 1));
        let (major, minor) = (0x103u64, 0x12345u64);
        let dev =
            (major & 0xfff) << 8 | (major & !0xfff) << 32 | (minor & 0xff) | (minor & !0xff) << 12;
        assert_eq!(dev_parts(dev), (0x103, 0x12345));
    }
}
