//! Service files for running `wrapix notifyd` at login: a systemd user unit (Linux) and a
//! launchd agent (macOS). Printed, not installed: the user puts them in place
//! (docs/notifications.md).

use std::path::Path;

/// The launchd label.
pub const LAUNCHD_LABEL: &str = "io.wrapix.notifyd";

/// A systemd user unit running `exe notifyd args…`.
pub fn systemd_unit(exe: &Path, args: &[String]) -> String {
    let mut argv = vec![systemd_quote(&exe.to_string_lossy()), "notifyd".to_owned()];
    argv.extend(args.iter().map(|a| systemd_quote(a)));
    format!(
        "[Unit]\n\
         Description=wrapix desktop notifications (wrapix notifyd)\n\
         PartOf=graphical-session.target\n\
         After=graphical-session.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={}\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         \n\
         [Install]\n\
         WantedBy=graphical-session.target\n",
        argv.join(" ")
    )
}

/// One ExecStart word: `%` and `$` escaped, quoted when needed.
fn systemd_quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    if escaped.is_empty()
        || escaped
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == ';')
        || escaped != s
    {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// A launchd agent (`~/Library/LaunchAgents/io.wrapix.notifyd.plist`).
pub fn launchd_plist(exe: &Path, args: &[String], log: &Path) -> String {
    let mut items = vec![exe.to_string_lossy().into_owned(), "notifyd".to_owned()];
    items.extend(args.iter().cloned());
    let program: String = items
        .iter()
        .map(|a| format!("    <string>{}</string>\n", xml_escape(a)))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \x20 <key>Label</key>\n\
         \x20 <string>{LAUNCHD_LABEL}</string>\n\
         \x20 <key>ProgramArguments</key>\n\
         \x20 <array>\n\
         {program}\
         \x20 </array>\n\
         \x20 <key>RunAtLoad</key>\n\
         \x20 <true/>\n\
         \x20 <key>KeepAlive</key>\n\
         \x20 <true/>\n\
         \x20 <key>StandardErrorPath</key>\n\
         \x20 <string>{}</string>\n\
         </dict>\n\
         </plist>\n",
        xml_escape(&log.to_string_lossy())
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_quotes_arguments() {
        let u = systemd_unit(
            Path::new("/home/a b/.cargo/bin/wrapix"),
            &["--command".into(), "notify-100%".into()],
        );
        assert!(
            u.contains(
                "ExecStart=\"/home/a b/.cargo/bin/wrapix\" notifyd --command \"notify-100%%\"\n"
            ),
            "{u}"
        );
        assert!(u.contains("WantedBy=graphical-session.target"));
    }

    #[test]
    fn plist_escapes() {
        let p = launchd_plist(
            Path::new("/usr/local/bin/wrapix"),
            &["a<b".into()],
            Path::new("/tmp/l.log"),
        );
        assert!(p.contains("<string>/usr/local/bin/wrapix</string>"));
        assert!(p.contains("<string>a&lt;b</string>"));
        assert!(p.contains("<string>io.wrapix.notifyd</string>"));
    }
}
