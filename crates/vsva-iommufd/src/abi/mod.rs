//! The iommufd user ABI: Linux `include/uapi/linux/iommufd.h` as of v7.1 (the revision
//! `iommufd-bindings` 0.2.0 was generated from), and the VFIO cdev ioctls
//! `VFIO_DEVICE_BIND_IOMMUFD`, `VFIO_DEVICE_ATTACH_IOMMUFD_PT` and
//! `VFIO_DEVICE_DETACH_IOMMUFD_PT` of `include/uapi/linux/vfio.h`.
//!
//! Types only, plus the rules every command shares; what a command *does* belongs to the
//! object model.
//!
//! * [`ioas`], [`hwpt`], [`hw_info`], [`fault`], [`viommu`], [`vfio`] — the argument structs,
//!   one module per object family, `#[repr(C)]` with `zerocopy` derives so a user buffer is
//!   read and written without `unsafe`. Every struct's size is pinned by a `const` assert
//!   next to it, and `tests/abi_layout.rs` checks every field offset against cloud-hypervisor's
//!   bindgen output of the same header.
//! * [`ioctl`] — the ioctl number encoding (`_IOC`), the numbers, and [`Command`]: the
//!   dispatch table of `drivers/iommu/iommufd/main.c` (`iommufd_ioctl_ops[]`) with each
//!   command's kernel struct size and `min_size`.
//! * [`copy`] — the extension rules: how a user struct of another size than the kernel's is
//!   accepted, zero-filled, refused (`EINVAL`, `E2BIG`) and written back.
//! * [`request`] — [`decode`]: one ioctl's user buffer to a typed [`Request`], with the rules of
//!   [`copy`] applied as Linux applies them to that command.
//! * [`errno`] — [`Errno`] with Linux's `asm-generic` values.
//!
//! # The general errno rules (`iommufd.h`, "General ioctl format")
//! | errno | meaning |
//! |---|---|
//! | `ENOTTY` | the ioctl number is not an iommufd command ([`Command::from_ioctl`] is `None`) |
//! | `E2BIG` | the user struct is larger than the kernel's and a byte past the kernel's end is non-zero |
//! | `EOPNOTSUPP` | a known field holds a value this kernel does not support: unknown flag bits, a non-zero reserved field, an unknown type |
//! | `EINVAL` | the struct is understood but a field is wrong (including `size` below the command's `min_size`) |
//! | `ENOENT` | an object ID or an IOVA does not exist |
//! | `ENOMEM` | out of memory |
//! | `EOVERFLOW` | arithmetic on the user's values overflowed |
//!
//! Enumerations of the header are `#[repr(transparent)]` newtypes with associated constants
//! (the header's values, any other value representable, so a struct read from user memory is
//! always valid); flag words are `bitflags` types applied to the struct's plain integer field.

pub mod copy;
pub mod errno;
pub mod fault;
pub mod hw_info;
pub mod hwpt;
pub mod ioas;
pub mod ioctl;
pub mod request;
pub mod vfio;
pub mod viommu;

pub use copy::{
    check_zero, known_flags, read_user_struct, read_vfio_flag_extended, user_size, write_back,
    write_back_range,
};
pub use errno::Errno;
pub use fault::*;
pub use hw_info::*;
pub use hwpt::*;
pub use ioas::*;
pub use ioctl::{Command, FdKind};
pub use request::{Request, decode};
pub use vfio::*;
pub use viommu::*;

/// Declares a header enumeration as a `u32`/`u16` newtype: the C enum's values are associated
/// constants, every other value stays representable (user memory may hold anything), and
/// `Debug` prints the constant's name when there is one.
macro_rules! uapi_enum {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($repr:ty) {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, PartialEq, Eq, Hash, Default,
            zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout,
        )]
        #[repr(transparent)]
        $vis struct $name(pub $repr);

        impl $name {
            $( $(#[$vmeta])* pub const $variant: Self = Self($value); )*

            /// The header's name for this value (the first one, where two names share a
            /// value), or `None` for a value the header does not define.
            pub const fn name(self) -> Option<&'static str> {
                $( if self.0 == $value { return Some(stringify!($variant)); } )*
                None
            }

            /// Whether the header defines this value.
            pub const fn is_known(self) -> bool {
                self.name().is_some()
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{}::{}", stringify!($name), name),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }

        impl From<$repr> for $name {
            fn from(value: $repr) -> Self {
                Self(value)
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}
pub(crate) use uapi_enum;

/// `offsetofend(Type, field)` of the kernel: the offset of the first byte after `field`.
/// This is how `main.c` computes a command's `min_size` from its last mandatory field.
macro_rules! offset_of_end {
    ($ty:ty, $field:ident) => {
        core::mem::offset_of!($ty, $field) + $crate::abi::field_size(|s: &$ty| &s.$field)
    };
}
pub(crate) use offset_of_end;

/// The size of the field a projection closure selects; lets [`offset_of_end!`] run in `const`
/// context without naming the field's type.
pub(crate) const fn field_size<T, F>(_project: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// Pins a struct's size and alignment at compile time, as worked out from the header
/// (exported for other crates' uAPI structs, such as `vsva-vfio-nesting`'s).
#[macro_export]
macro_rules! assert_layout {
    ($ty:ty, size = $size:expr, align = $align:expr) => {
        const _: () = assert!(
            ::core::mem::size_of::<$ty>() == $size && ::core::mem::align_of::<$ty>() == $align
        );
    };
}
pub(crate) use assert_layout;
