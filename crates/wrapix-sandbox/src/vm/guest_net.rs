//! The guest's network, set up by PID 1 before the command starts (there is no `ip` in the
//! initramfs): `lo` always; for `network = "open"`, `eth0` (virtio-net, served by passt on the
//! host) with a fixed address and a default route through passt's gateway. The command runs
//! with no capabilities and cannot change any of it. The host's own addresses are not blocked
//! here but outside the VM, in the namespace passt runs in ([`super::passt`]): a guest whose
//! kernel is compromised could change the guest's routes, not those.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{GuestNet, GuestNic};

/// `struct rtentry` of `<net/route.h>` (x86_64), which the libc crate lacks for glibc.
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; plain data.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin)
    }
}

fn ifreq(name: &str) -> Result<libc::ifreq, String> {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    #[allow(unsafe_code)]
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= r.ifr_name.len() {
        return Err(format!("interface name {name:?} is too long"));
    }
    for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

#[allow(unsafe_code)]
fn ioctl<T>(sock: &OwnedFd, request: libc::c_ulong, arg: &mut T, what: &str) -> Result<(), String> {
    // SAFETY: one ioctl on an open socket with a pointer to a live value of the request's type.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request as _, arg as *mut T) };
    if rc != 0 {
        return Err(format!("{what}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn socket() -> Result<OwnedFd, String> {
    // SAFETY: socket(2) with constants; the fd is owned below.
    #[allow(unsafe_code)]
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd nothing else owns.
    #[allow(unsafe_code)]
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn up(sock: &OwnedFd, name: &str) -> Result<(), String> {
    let mut r = ifreq(name)?;
    ioctl(
        sock,
        libc::SIOCGIFFLAGS,
        &mut r,
        &format!("read {name}'s flags"),
    )?;
    // SAFETY: the union's flags member, just filled in by SIOCGIFFLAGS.
    #[allow(unsafe_code)]
    unsafe {
        r.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    ioctl(
        sock,
        libc::SIOCSIFFLAGS,
        &mut r,
        &format!("bring {name} up"),
    )
}

/// `lo` up; with `net`, `eth0` (waiting, bounded, for the driver) with its address and the
/// default route; with `ports`, the published ports' NIC (found by its MAC) with its address
/// and no route beyond its subnet.
pub fn configure(net: Option<&GuestNet>, ports: Option<&GuestNic>) -> Result<(), String> {
    let sock = socket()?;
    up(&sock, "lo")?;
    if let Some(nic) = ports {
        let mac = nic.mac.to_ascii_lowercase();
        let name = wait_for_nic(&format!("the published ports' interface ({mac})"), || {
            std::fs::read_dir("/sys/class/net")
                .ok()?
                .flatten()
                .find_map(|e| {
                    let a = std::fs::read_to_string(e.path().join("address")).ok()?;
                    (a.trim() == mac).then(|| e.file_name().to_string_lossy().into_owned())
                })
        })?;
        set_address(&sock, &name, parse(&nic.address)?, nic.prefix)?;
    }
    let Some(net) = net else { return Ok(()) };
    let (addr, gateway) = (parse(&net.address)?, parse(&net.gateway)?);
    let name = "eth0";
    wait_for_nic("the VM's network interface eth0", || {
        std::path::Path::new("/sys/class/net")
            .join(name)
            .exists()
            .then(|| name.to_owned())
    })?;
    set_address(&sock, name, addr, net.prefix)?;
    let dev = CString::new(name).map_err(|_| "interface name")?;
    let mut rt = RtEntry {
        rt_pad1: 0,
        rt_dst: sockaddr(Ipv4Addr::UNSPECIFIED),
        rt_gateway: sockaddr(gateway),
        rt_genmask: sockaddr(Ipv4Addr::UNSPECIFIED),
        rt_flags: (libc::RTF_UP | libc::RTF_GATEWAY) as libc::c_ushort,
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: dev.as_ptr() as *mut libc::c_char,
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    ioctl(&sock, libc::SIOCADDRT, &mut rt, "add the default route")
}

fn parse(s: &str) -> Result<Ipv4Addr, String> {
    s.parse::<Ipv4Addr>()
        .map_err(|_| format!("{s:?} is not an IPv4 address"))
}

/// The interface `find` names, waiting (bounded) for its driver.
fn wait_for_nic(what: &str, find: impl Fn() -> Option<String>) -> Result<String, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(name) = find() {
            return Ok(name);
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("{what} did not appear"));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// `name`'s address and netmask, then up.
fn set_address(sock: &OwnedFd, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), String> {
    if prefix > 32 {
        return Err(format!("prefix /{prefix} is not IPv4"));
    }
    let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0));
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_addr = sockaddr(addr);
    ioctl(
        sock,
        libc::SIOCSIFADDR,
        &mut r,
        &format!("set {name}'s address"),
    )?;
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_netmask = sockaddr(mask);
    ioctl(
        sock,
        libc::SIOCSIFNETMASK,
        &mut r,
        &format!("set {name}'s netmask"),
    )?;
    up(sock, name)
}
