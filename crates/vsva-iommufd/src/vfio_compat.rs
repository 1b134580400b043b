//! The iommufd side of the VFIO container compatibility API (Linux
//! `drivers/iommu/iommufd/vfio_compat.c`): which IOAS the legacy `/dev/vfio/vfio` ioctls work
//! on, chosen with `IOMMU_VFIO_IOAS`.
//!
//! The compatibility IOAS is a weak link (`ictx->vfio_ioas`): it does not keep the IOAS from
//! being destroyed, and destroying the IOAS clears it ([`Iommufd::destroy`]). The legacy
//! container ioctls themselves (`VFIO_IOMMU_MAP_DMA`, ...) are future work.

use crate::abi::{Errno, IommuVfioIoas, VfioIoasOp, check_zero};
use crate::ctx::Iommufd;
use crate::ioas::Ioas;
use crate::object::Held;

impl Iommufd {
    /// The compatibility IOAS (`get_compat_ioas()`).
    ///
    /// # Errors
    /// `ENODEV` if none is set.
    pub fn vfio_compat_ioas(&self) -> Result<Held<Ioas>, Errno> {
        let state = self.state();
        let id = state.vfio_ioas.ok_or(Errno::ENODEV)?;
        state.objects.get(id).map_err(|_| Errno::ENODEV)
    }

    /// `IOMMU_VFIO_IOAS` (`iommufd_vfio_ioas()`): `GET` returns the compatibility IOAS in
    /// `cmd.ioas_id`; `SET` makes the IOAS `cmd.ioas_id` the compatibility IOAS; `CLEAR`
    /// forgets it (the IOAS itself stays). Only `GET` returns the struct to the caller.
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for non-zero `__reserved`; `GET` with none set is `ENODEV`;
    /// `SET` of an ID that is not an IOAS is `ENOENT`; any other `op` is `EOPNOTSUPP`.
    pub fn vfio_ioas(&self, cmd: &mut IommuVfioIoas) -> Result<(), Errno> {
        check_zero(&cmd.__reserved)?;
        match cmd.op {
            VfioIoasOp::GET => {
                cmd.ioas_id = self.vfio_compat_ioas()?.id();
                Ok(())
            }
            VfioIoasOp::SET => {
                let ioas = self.get_ioas(cmd.ioas_id)?;
                self.state().vfio_ioas = Some(ioas.id());
                Ok(())
            }
            VfioIoasOp::CLEAR => {
                self.state().vfio_ioas = None;
                Ok(())
            }
            _ => Err(Errno::EOPNOTSUPP),
        }
    }
}
