//! Where a notification ends up: the desktop (D-Bus on Linux, the notification center on
//! macOS), a user program (`--command`), or a function (tests, benchmarks).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::frame::Frame;
use crate::NotifyError;

/// The most time a `--command` program may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// The most time a D-Bus call may take.
pub const DBUS_TIMEOUT: Duration = Duration::from_secs(5);

/// What `notifyd` was asked to use (built into a [`Sink`] inside the daemon's runtime).
#[derive(Clone)]
pub enum SinkSpec {
    /// The platform's notifications: D-Bus `org.freedesktop.Notifications` on Linux (the session
    /// bus, or `address`), the notification center on macOS.
    Desktop { address: Option<String> },
    /// A program: argv, the message on stdin, never a shell string.
    Command(Vec<String>),
    /// A function (tests and benchmarks).
    Func(Arc<dyn Fn(&Frame) + Send + Sync>),
}

impl std::fmt::Debug for SinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkSpec::Desktop { address } => write!(f, "Desktop({address:?})"),
            SinkSpec::Command(argv) => write!(f, "Command({argv:?})"),
            SinkSpec::Func(_) => write!(f, "Func"),
        }
    }
}

pub enum Sink {
    #[cfg(target_os = "linux")]
    Dbus(dbus::Dbus),
    #[cfg(target_os = "macos")]
    MacOs,
    Command(Vec<String>),
    Func(Arc<dyn Fn(&Frame) + Send + Sync>),
}

impl Sink {
    pub async fn build(spec: SinkSpec) -> Result<Sink, NotifyError> {
        Ok(match spec {
            #[cfg(target_os = "linux")]
            SinkSpec::Desktop { address } => Sink::Dbus(dbus::Dbus::connect(address).await?),
            #[cfg(target_os = "macos")]
            SinkSpec::Desktop { .. } => Sink::MacOs,
            #[cfg(not(any(target_os = "linux", target_os = "macos")))]
            SinkSpec::Desktop { .. } => {
                return Err(NotifyError::Sink(
                    "no desktop notifications on this platform; use --command".into(),
                ))
            }
            SinkSpec::Command(argv) if argv.is_empty() => {
                return Err(NotifyError::Invalid("--command needs a program".into()))
            }
            SinkSpec::Command(argv) => Sink::Command(argv),
            SinkSpec::Func(f) => Sink::Func(f),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            #[cfg(target_os = "linux")]
            Sink::Dbus(d) => d.describe(),
            #[cfg(target_os = "macos")]
            Sink::MacOs => "the macOS notification center".into(),
            Sink::Command(argv) => format!("the command {argv:?}"),
            Sink::Func(_) => "a function".into(),
        }
    }

    pub async fn show(&mut self, frame: &Frame) -> Result<(), NotifyError> {
        match self {
            #[cfg(target_os = "linux")]
            Sink::Dbus(d) => d.show(frame).await,
            #[cfg(target_os = "macos")]
            Sink::MacOs => macos::show(frame).await,
            Sink::Command(argv) => run_command(argv, frame).await,
            Sink::Func(f) => {
                f(frame);
                Ok(())
            }
        }
    }
}

/// Runs `argv` with the message on stdin and the other fields in the environment.
async fn run_command(argv: &[String], frame: &Frame) -> Result<(), NotifyError> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env("WRAPIX_NOTIFY_TITLE", &frame.title)
        .env(
            "WRAPIX_NOTIFY_SOUND",
            frame.sound.as_deref().unwrap_or_default(),
        )
        .env(
            "WRAPIX_SESSION_ID",
            frame.session_id.as_deref().unwrap_or_default(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| NotifyError::Sink(format!("cannot run {:?}: {e}", argv[0])))?;
    if let Some(mut stdin) = child.stdin.take() {
        let mut body = frame.message.clone().into_bytes();
        body.push(b'\n');
        // A program that does not read its stdin is not an error.
        let _ = stdin.write_all(&body).await;
    }
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            NotifyError::Sink(format!(
                "{:?} did not finish within {} s (killed)",
                argv[0],
                COMMAND_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| NotifyError::Sink(format!("waiting for {:?}: {e}", argv[0])))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NotifyError::Sink(format!(
            "{:?} failed ({}): {}",
            argv[0],
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(target_os = "linux")]
pub mod dbus {
    //! `org.freedesktop.Notifications.Notify` over the session bus (zbus).

    use std::collections::HashMap;

    use zbus::zvariant::Value;

    use super::{Frame, NotifyError, DBUS_TIMEOUT};

    pub const SERVICE: &str = "org.freedesktop.Notifications";
    pub const PATH: &str = "/org/freedesktop/Notifications";

    pub struct Dbus {
        address: Option<String>,
        conn: Option<zbus::Connection>,
        /// The server renders markup in bodies (or did not say): escape `<`, `>` and `&`.
        markup: bool,
    }

    impl Dbus {
        /// Connects now, so a missing bus is reported when the daemon starts.
        pub async fn connect(address: Option<String>) -> Result<Dbus, NotifyError> {
            let mut d = Dbus {
                address,
                conn: None,
                markup: true,
            };
            let conn = d.connection().await?;
            let caps = conn.call_method(Some(SERVICE), PATH, Some(SERVICE), "GetCapabilities", &());
            if let Ok(Ok(reply)) = tokio::time::timeout(DBUS_TIMEOUT, caps).await {
                if let Ok(caps) = reply.body().deserialize::<Vec<String>>() {
                    d.markup = caps.iter().any(|c| c == "body-markup");
                }
            }
            Ok(d)
        }

        pub fn describe(&self) -> String {
            match &self.address {
                Some(a) => format!("D-Bus {SERVICE} on {a}"),
                None => format!("D-Bus {SERVICE} on the session bus"),
            }
        }

        async fn connection(&mut self) -> Result<zbus::Connection, NotifyError> {
            if let Some(c) = &self.conn {
                return Ok(c.clone());
            }
            let conn = match &self.address {
                Some(a) => match zbus::connection::Builder::address(a.as_str()) {
                    Ok(b) => b.build().await,
                    Err(e) => Err(e),
                },
                None => zbus::Connection::session().await,
            }
            .map_err(|e| {
                NotifyError::Sink(format!(
                    "cannot connect to the D-Bus session bus ({e}); is DBUS_SESSION_BUS_ADDRESS set?"
                ))
            })?;
            self.conn = Some(conn.clone());
            Ok(conn)
        }

        pub async fn show(&mut self, frame: &Frame) -> Result<(), NotifyError> {
            match self.call(frame).await {
                Ok(()) => Ok(()),
                // The bus may have restarted: reconnect once.
                Err(_) => {
                    self.conn = None;
                    self.call(frame).await
                }
            }
        }

        async fn call(&mut self, frame: &Frame) -> Result<(), NotifyError> {
            let conn = self.connection().await?;
            let body = if self.markup {
                escape_markup(&frame.message)
            } else {
                frame.message.clone()
            };
            let mut hints: HashMap<&str, Value<'_>> = HashMap::new();
            hints.insert("urgency", Value::U8(1));
            hints.insert("desktop-entry", Value::from("wrapix"));
            if let Some(s) = &frame.sound {
                hints.insert("sound-name", Value::from(s.as_str()));
            }
            let actions: Vec<&str> = Vec::new();
            let args = (
                "wrapix",
                0u32,
                "",
                frame.title.as_str(),
                body.as_str(),
                actions,
                hints,
                -1i32,
            );
            let call = conn.call_method(Some(SERVICE), PATH, Some(SERVICE), "Notify", &args);
            tokio::time::timeout(DBUS_TIMEOUT, call)
                .await
                .map_err(|_| {
                    NotifyError::Sink(format!(
                        "{SERVICE} did not answer within {} s",
                        DBUS_TIMEOUT.as_secs()
                    ))
                })?
                .map_err(|e| NotifyError::Sink(format!("{SERVICE}.Notify: {e}")))?;
            Ok(())
        }
    }

    /// Bodies may carry a small markup subset on most servers: show the text as text.
    pub fn escape_markup(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn escapes() {
            assert_eq!(super::escape_markup("<b>&"), "&lt;b&gt;&amp;");
        }
    }
}

#[cfg(target_os = "macos")]
mod macos {
    //! The macOS notification center, through `mac-notification-sys`.

    use super::{Frame, NotifyError};

    pub async fn show(frame: &Frame) -> Result<(), NotifyError> {
        let frame = frame.clone();
        tokio::task::spawn_blocking(move || {
            let mut options = mac_notification_sys::Notification::new();
            if let Some(s) = &frame.sound {
                options.sound(s.as_str());
            }
            mac_notification_sys::send_notification(
                &frame.title,
                None,
                &frame.message,
                Some(&options),
            )
            .map(|_| ())
            .map_err(|e| NotifyError::Sink(format!("notification center: {e}")))
        })
        .await
        .map_err(|e| NotifyError::Sink(format!("notification task: {e}")))?
    }
}
