//! `IommuPort::translate_with` holds its translation across the access (PCIe Base 6.0
//! §10.3.1: the Invalidate Completion follows every access that used the old translation), on
//! VT-d and on SMMUv3. Deterministic: the access is parked on a channel, and the port's hook
//! says when the unmap's invalidation found it and waits.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::thread;

use common::{Guest, IOVA};
use vm_memory::iommu::{Error, Iommu};
use vm_memory::{Bytes, GuestAddress, Permissions};
use vsva_embed::PortPoint;
use vsva_host::{IommuKind, Smmuv3Kind, VtdKind};
use vsva_pgtable::Perm;

trait Config: IommuKind {
    fn config() -> Self::Config;
}
impl Config for VtdKind {
    fn config() -> vsva_vtd::VtdConfig {
        vsva_vtd::VtdConfig::default()
    }
}
impl Config for Smmuv3Kind {
    fn config() -> vsva_smmuv3::Smmuv3Config {
        vsva_smmuv3::Smmuv3Config::default()
    }
}

fn an_unmap_waits_for_an_access_parked_inside_translate_with<K: Config>() {
    let g = Guest::<K>::boot(K::config());
    let (domain, port) = g.plug();
    g.ram
        .write_slice(b"payload!", GuestAddress(g.page(0)))
        .unwrap();
    domain.map(IOVA, g.page(0), 4096, Perm::RW, false).unwrap();

    let (waits_tx, waits_rx) = channel();
    let waits_tx = Mutex::new(waits_tx);
    port.set_hook(Arc::new(move |p| {
        if p == PortPoint::InvalidationWaits {
            let _ = waits_tx.lock().unwrap().send(());
        }
    }))
    .ok()
    .unwrap();

    let (entered_tx, entered_rx) = channel();
    let (release_tx, release_rx) = channel::<()>();
    let ram = g.ram.clone();
    let device = {
        let port = port.clone();
        thread::spawn(move || {
            port.translate_with(GuestAddress(IOVA), 8, Permissions::Read, |ranges| {
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                // The access, still under the translation.
                let mut b = [0u8; 8];
                ram.read_slice(&mut b, ranges[0].base).unwrap();
                b
            })
        })
    };
    entered_rx.recv().unwrap();

    let (unmapped_tx, unmapped_rx) = channel();
    let guest = {
        let domain = domain.clone();
        thread::spawn(move || unmapped_tx.send(domain.unmap(IOVA, 4096)).unwrap())
    };
    // The unit's invalidation reached the port and found the access in progress.
    waits_rx.recv().unwrap();
    assert_eq!(
        unmapped_rx.try_recv(),
        Err(TryRecvError::Empty),
        "unmap returned early"
    );

    release_tx.send(()).unwrap();
    assert_eq!(&device.join().unwrap().unwrap(), b"payload!");
    assert_eq!(unmapped_rx.recv().unwrap(), 4096);
    guest.join().unwrap();

    // The translation is gone: the next DMA faults.
    let e = port
        .translate_with(GuestAddress(IOVA), 8, Permissions::Read, |_| ())
        .unwrap_err();
    assert!(matches!(e, Error::CannotResolve { .. }), "{e:?}");
    assert_eq!(g.faults().len(), 1);
}

fn an_unmap_does_not_wait_when_no_access_is_in_progress<K: Config>() {
    let g = Guest::<K>::boot(K::config());
    let (domain, port) = g.plug();
    domain.map(IOVA, g.page(0), 4096, Perm::RW, false).unwrap();
    let waits = Arc::new(AtomicUsize::new(0));
    let invalidated = Arc::new(AtomicUsize::new(0));
    let (w, i) = (waits.clone(), invalidated.clone());
    port.set_hook(Arc::new(move |p| match p {
        PortPoint::InvalidationWaits => {
            w.fetch_add(1, Ordering::SeqCst);
        }
        PortPoint::Invalidated => {
            i.fetch_add(1, Ordering::SeqCst);
        }
        PortPoint::CompletionReceived { .. } => {}
    }))
    .ok()
    .unwrap();
    let b = port
        .translate_with(GuestAddress(IOVA), 8, Permissions::Read, |r| r[0].base)
        .unwrap();
    assert_eq!(b, GuestAddress(g.page(0)));
    // On this thread, after the access: the unmap cannot be waiting for anyone.
    assert_eq!(domain.unmap(IOVA, 4096), 4096);
    assert_eq!(waits.load(Ordering::SeqCst), 0);
    assert!(invalidated.load(Ordering::SeqCst) >= 1);
}

fn the_iterator_translate_returns_holds_off_invalidations_too<K: Config>() {
    let g = Guest::<K>::boot(K::config());
    let (domain, port) = g.plug();
    domain.map(IOVA, g.page(0), 4096, Perm::RW, false).unwrap();
    let (waits_tx, waits_rx) = channel();
    let waits_tx = Mutex::new(waits_tx);
    port.set_hook(Arc::new(move |p| {
        if p == PortPoint::InvalidationWaits {
            let _ = waits_tx.lock().unwrap().send(());
        }
    }))
    .ok()
    .unwrap();
    let it = port
        .translate(GuestAddress(IOVA), 8, Permissions::Read)
        .unwrap();
    let (unmapped_tx, unmapped_rx) = channel();
    let guest = {
        let domain = domain.clone();
        thread::spawn(move || unmapped_tx.send(domain.unmap(IOVA, 4096)).unwrap())
    };
    waits_rx.recv().unwrap();
    assert_eq!(unmapped_rx.try_recv(), Err(TryRecvError::Empty));
    drop(it);
    assert_eq!(unmapped_rx.recv().unwrap(), 4096);
    guest.join().unwrap();
}

fn a_completion_overtaken_by_an_invalidation_is_not_cached<K: Config>() {
    let g = Guest::<K>::boot(K::config());
    let (domain, port) = g.plug();
    domain.map(IOVA, g.page(0), 4096, Perm::RW, false).unwrap();
    // The guest unmaps between the completion's arrival and its caching.
    let once = AtomicBool::new(false);
    let d = domain.clone();
    port.set_hook(Arc::new(move |p| {
        if matches!(p, PortPoint::CompletionReceived { .. }) && !once.swap(true, Ordering::SeqCst) {
            assert_eq!(d.unmap(IOVA, 4096), 4096);
        }
    }))
    .ok()
    .unwrap();
    let e = port
        .translate(GuestAddress(IOVA), 8, Permissions::Read)
        .map(|it| it.collect::<Vec<_>>())
        .unwrap_err();
    assert!(matches!(e, Error::CannotResolve { .. }), "{e:?}");
    let s = port.stats();
    assert_eq!(
        (s.stale, s.translation_requests, s.faults),
        (1, 2, 1),
        "stale completion dropped, asked again, faulted"
    );
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod vtd {
            $(#[test] fn $name() { super::$name::<super::VtdKind>() })*
        }
        mod smmuv3 {
            $(#[test] fn $name() { super::$name::<super::Smmuv3Kind>() })*
        }
    };
}

on_both!(
    an_unmap_waits_for_an_access_parked_inside_translate_with,
    an_unmap_does_not_wait_when_no_access_is_in_progress,
    the_iterator_translate_returns_holds_off_invalidations_too,
    a_completion_overtaken_by_an_invalidation_is_not_cached,
);
