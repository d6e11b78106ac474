# home-manager: `wrapix notifyd` as a systemd user service (Linux) or a launchd agent (macOS).
# The service files are what `wrapix notifyd --print-systemd-unit` / `--print-launchd-plist`
# print (tested on the Rust side), generated at build time: no unit text is written here.
self:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.wrapix-notifyd;
  args = lib.optionals (cfg.listenTcp != null) [
    "--listen-tcp"
    cfg.listenTcp
  ];
  generated =
    name: flag:
    pkgs.runCommand name { } ''
      ${cfg.package}/bin/wrapix notifyd ${flag} ${lib.escapeShellArgs args} > $out
    '';
  darwin = pkgs.stdenv.hostPlatform.isDarwin;
in
{
  options.services.wrapix-notifyd = {
    enable = lib.mkEnableOption "wrapix notifyd, desktop notifications from sandboxes";
    package = lib.mkOption {
      type = lib.types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      description = "The wrapix package.";
    };
    listenTcp = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = if darwin then "192.168.64.1" else null;
      description = "ADDR[:PORT] for VM sandboxes (Apple container's gateway on macOS); never all interfaces.";
    };
  };

  config = lib.mkIf cfg.enable (
    if darwin then
      {
        home.file."Library/LaunchAgents/io.wrapix.notifyd.plist".source =
          generated "io.wrapix.notifyd.plist" "--print-launchd-plist";
      }
    else
      let
        unit = generated "wrapix-notifyd.service" "--print-systemd-unit";
      in
      {
        xdg.configFile."systemd/user/wrapix-notifyd.service".source = unit;
        xdg.configFile."systemd/user/graphical-session.target.wants/wrapix-notifyd.service".source = unit;
      }
  );
}
