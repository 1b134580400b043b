//! Accesses attached to an IOAS and the pages they pin or copy through it (Linux
//! `iopt_add_access`, `iopt_remove_access`, `iopt_access_pin_pages`,
//! `iopt_access_unpin_pages`, `iommufd_access_rw`), with the alignment and `prevent_access`
//! rules of the parent module's doc.

use std::sync::Weak;

use vsva_mem::PhysMem;

use super::{EADDRINUSE, IoPageTable, IoptAccess, PAGE, contig_areas};
use crate::abi::Errno;
use crate::domain::IoProt;
use crate::pages::RwBuf;

impl IoPageTable {
    /// Attaches an access with IOVA alignment `alignment` (`iopt_add_access()`): the IOAS's
    /// alignment rises to it. Returns the access's list ID.
    ///
    /// # Errors
    /// `EADDRINUSE` if an existing area is not aligned to the raised alignment
    /// (`iopt_check_iova_alignment()`); `EBUSY` if 65536 accesses are attached
    /// (`xa_limit_16b`).
    pub fn add_access(&self, access: Weak<dyn IoptAccess>, alignment: u64) -> Result<u32, Errno> {
        // the list entry (`xa_alloc()`)
        vsva_mem::fail_nth::check()?;
        let mut st = self.lock();
        let id = (0..=u32::from(u16::MAX))
            .find(|i| !st.accesses.contains_key(i))
            .ok_or(Errno::EBUSY)?;
        let old = st.alignment();
        st.accesses.insert(id, (alignment.max(1), access));
        let new = st.alignment();
        if new > old && !st.areas_aligned(new) {
            st.accesses.remove(&id);
            return Err(EADDRINUSE);
        }
        Ok(id)
    }

    /// Detaches access `id` (`iopt_remove_access()`); the alignment falls back.
    pub fn remove_access(&self, id: u32) {
        self.lock().accesses.remove(&id);
    }

    /// Pins the pages behind `[iova, last]` for an access (the body of
    /// `iommufd_access_pin_pages()` under the IOAS lock), in Linux's order per area:
    /// `EINVAL` if the area is being unmapped, if the range does not start on a page of the
    /// memory or a join between areas is not on a page boundary
    /// (`iopt_area_contig_is_aligned()`), `EPERM` without the right asked for (write, or
    /// read: `check_area_prot()`), then the pinning's own errors; `ENOENT` if the areas stop before `last`. On an
    /// error, what this call pinned is unpinned. Returns each page's physical address.
    ///
    /// # Errors
    /// As above.
    pub fn access_pin(&self, iova: u64, last: u64, write: bool) -> Result<Vec<u64>, Errno> {
        let mut st = self.lock();
        let (keys, done) = contig_areas(&st.areas, iova, last);
        let mut out = Vec::new();
        let mut taken: Vec<(u64, u64, u64)> = Vec::new();
        let mut failure = None;
        let n = keys.len();
        for (i, k) in keys.iter().enumerate() {
            let Some(a) = st.areas.get_mut(k) else {
                failure = Some(Errno::ENOENT);
                break;
            };
            let cur = a.iova.max(iova);
            let end = a.last.min(last);
            let starts_page = a.start_byte(cur) % PAGE == 0;
            let ends_page = i + 1 == n || a.start_byte(end) % PAGE == PAGE - 1;
            if a.prevent_access || !starts_page || !ends_page {
                failure = Some(Errno::EINVAL);
                break;
            }
            if !a.prot.contains(IoProt::for_access(write)) {
                failure = Some(Errno::EPERM);
                break;
            }
            let (first, last_index) = (a.index(cur), a.index(end));
            match a.pages.pin_for_access(first, last_index) {
                Ok(pas) => out.extend(pas),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            a.num_accesses += last_index - first + 1;
            taken.push((*k, first, last_index));
        }
        if failure.is_none() && !done {
            failure = Some(Errno::ENOENT);
        }
        if let Some(e) = failure {
            for (k, first, last_index) in taken {
                if let Some(a) = st.areas.get_mut(&k) {
                    a.pages.unpin_for_access(first, last_index);
                    a.num_accesses = a.num_accesses.saturating_sub(last_index - first + 1);
                }
            }
            return Err(e);
        }
        Ok(out)
    }

    /// Drops an access's pins of `[iova, last]` (`iommufd_access_unpin_pages()`). Pins the
    /// access does not hold, or a range with a gap, are the driver's bug: logged. Such a bug
    /// neither unpins through an area no access pinned through (its memory may be another
    /// IOAS's, pinned there) nor uncounts pins it did not drop, so an unmap still waits for
    /// the pins that are real.
    pub fn access_unpin(&self, iova: u64, last: u64) {
        let mut st = self.lock();
        let (keys, done) = contig_areas(&st.areas, iova, last);
        for k in keys {
            if let Some(a) = st.areas.get_mut(&k) {
                if a.num_accesses == 0 {
                    tracing::error!(iova = a.iova, "access unpin in an area with no pins");
                    continue;
                }
                let (first, last_index) = (a.index(a.iova.max(iova)), a.index(a.last.min(last)));
                let dropped = a.pages.unpin_for_access(first, last_index);
                if a.num_accesses < dropped {
                    tracing::error!(iova = a.iova, "access unpin of more than was pinned");
                }
                a.num_accesses = a.num_accesses.saturating_sub(dropped);
            }
        }
        if !done {
            tracing::error!(iova, last, "access unpin of a range that is not mapped");
        }
    }

    /// Reads or writes `[iova, iova + buf.len())` for an access (the body of
    /// `iommufd_access_rw()`), area by area: `EINVAL` for an area being unmapped, `EPERM`
    /// without the right asked for, the copy's errors, `ENOENT` where the areas stop. Areas before
    /// the failing one have been copied, as in Linux.
    ///
    /// # Errors
    /// As above; `EINVAL` for an empty buffer, `EOVERFLOW` if the range wraps.
    pub fn access_rw(&self, iova: u64, mut buf: RwBuf<'_>, mem: &dyn PhysMem) -> Result<(), Errno> {
        let len = buf.len() as u64;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let last = iova.checked_add(len - 1).ok_or(Errno::EOVERFLOW)?;
        let (pieces, done) = {
            let st = self.lock();
            let (keys, done) = contig_areas(&st.areas, iova, last);
            let mut pieces = Vec::new();
            for k in keys {
                let Some(a) = st.areas.get(&k) else { break };
                let cur = a.iova.max(iova);
                let end = a.last.min(last);
                let piece = if a.prevent_access {
                    Err(Errno::EINVAL)
                } else if !a.prot.contains(IoProt::for_access(buf.is_write())) {
                    Err(Errno::EPERM)
                } else {
                    Ok((
                        a.pages.clone(),
                        a.start_byte(cur),
                        cur - iova,
                        end - cur + 1,
                    ))
                };
                let stop = piece.is_err();
                pieces.push(piece);
                if stop {
                    break;
                }
            }
            (pieces, done)
        };
        // The pages are held by the pieces' references: copying needs no IOAS lock (Linux
        // copies under the IOAS's read lock; an unmap racing a copy here copies into pages
        // the area no longer names, which the caller cannot tell from copying just before).
        for piece in pieces {
            let (pages, start_byte, at, n) = piece?;
            let (lo, hi) = (at as usize, (at + n) as usize);
            let part = match &mut buf {
                RwBuf::Read(b) => RwBuf::Read(&mut b[lo..hi]),
                RwBuf::Write(b) => RwBuf::Write(&b[lo..hi]),
            };
            pages.rw(start_byte, part, mem)?;
        }
        if !done {
            return Err(Errno::ENOENT);
        }
        Ok(())
    }
}
