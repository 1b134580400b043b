//! Linux error numbers, as the iommufd ioctls return them: vsva-mem's [`Errno`], the one type
//! every layer uses.

pub use vsva_mem::Errno;
