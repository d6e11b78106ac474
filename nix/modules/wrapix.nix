# services.wrapix: what the sandbox backends need on a NixOS host.
self:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.wrapix;
  has = b: builtins.elem b cfg.backends;
in
{
  options.services.wrapix = {
    enable = lib.mkEnableOption "wrapix, sandboxes for AI coding agents";
    package = lib.mkOption {
      type = lib.types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      description = "The wrapix package.";
    };
    backends = lib.mkOption {
      type = lib.types.listOf (
        lib.types.enum [
          "bwrap"
          "podman"
          "nspawn"
        ]
      );
      default = [ "bwrap" ];
      description = "The backends whose host packages are installed (bwrap is the default backend).";
    };
    users = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      description = "Users who run rootless podman sandboxes: they get subordinate UID/GID ranges.";
    };
  };

  config = lib.mkIf cfg.enable {
    environment.systemPackages = [
      cfg.package
      pkgs.bubblewrap
      pkgs.passt
    ]
    ++ lib.optionals (has "podman") [
      pkgs.podman
      pkgs.fuse-overlayfs
    ];
    # bubblewrap (not setuid) and rootless podman need unprivileged user namespaces.
    security.unprivilegedUsernsClone = true;
    # pasta (network = "open") opens /dev/net/tun.
    boot.kernelModules = [ "tun" ];
    virtualisation.podman.enable = lib.mkIf (has "podman") true;
    users.users = lib.genAttrs cfg.users (_: {
      autoSubUidGidRange = true;
    });
  };
}
