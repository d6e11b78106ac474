//! The guest's network, set up by PID 1 before the command starts (there is no `ip` in the
//! initramfs): `lo` always; for `network = "open"`, `eth0` (virtio-net, served by passt on the
//! host) with a fixed address and a default route through passt's gateway. The command runs
//! with no capabilities and cannot change any of it. The host's own addresses are not blocked
//! here but outside the VM, in the namespace passt runs in ([`super::passt`]): a guest whose
//! kernel is compromised could change the guest's routes, not those.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::GuestNet;

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
/// default route.
pub fn configure(net: Option<&GuestNet>) -> Result<(), String> {
    let sock = socket()?;
    up(&sock, "lo")?;
    let Some(net) = net else { return Ok(()) };
    let parse = |s: &str| {
        s.parse::<Ipv4Addr>()
            .map_err(|_| format!("{s:?} is not an IPv4 address"))
    };
    let (addr, gateway) = (parse(&net.address)?, parse(&net.gateway)?);
    if net.prefix > 32 {
        return Err(format!("prefix /{} is not IPv4", net.prefix));
    }
    let mask = Ipv4Addr::from(
        u32::MAX
            .checked_shl(32 - u32::from(net.prefix))
            .unwrap_or(0),
    );
    let name = "eth0";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::path::Path::new("/sys/class/net").join(name).exists() {
        if std::time::Instant::now() > deadline {
            return Err("the VM's network interface eth0 did not appear".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_addr = sockaddr(addr);
    ioctl(&sock, libc::SIOCSIFADDR, &mut r, "set eth0's address")?;
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_netmask = sockaddr(mask);
    ioctl(&sock, libc::SIOCSIFNETMASK, &mut r, "set eth0's netmask")?;
    up(&sock, name)?;
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
