# services.wrapix-manager: `wrapix manager` (REST API and dashboard) as a hardened system
# service. The sandboxes it starts need user namespaces, so namespaces stay allowed.
self:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.wrapix-manager;
in
{
  options.services.wrapix-manager = {
    enable = lib.mkEnableOption "the wrapix manager (sessions over REST and a dashboard)";
    package = lib.mkOption {
      type = lib.types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      description = "The wrapix package.";
    };
    listenAddress = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1:3000";
      description = "ADDR:PORT to listen on (the TCP door always needs a token).";
    };
    stateDir = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/wrapix-manager";
      description = "Where sessions, logs and screenshots are kept.";
    };
    allowedRoots = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "/srv/projects" ];
      description = "Folders under which sessions may use projects (each `--allow-root`); writable by the service.";
    };
    user = lib.mkOption {
      type = lib.types.str;
      default = "wrapix";
      description = "The user the manager and its sandboxes run as.";
    };
  };

  config = lib.mkIf cfg.enable {
    users.users.${cfg.user} = {
      isSystemUser = true;
      group = cfg.user;
      home = cfg.stateDir;
      autoSubUidGidRange = true;
    };
    users.groups.${cfg.user} = { };
    security.unprivilegedUsernsClone = true;

    systemd.services.wrapix-manager = {
      description = "wrapix manager";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      path = [
        cfg.package
        pkgs.bubblewrap
        pkgs.passt
        pkgs.tmux
      ];
      serviceConfig = {
        ExecStart = lib.escapeShellArgs (
          [
            "${cfg.package}/bin/wrapix"
            "manager"
            "--listen"
            cfg.listenAddress
            "--state-dir"
            cfg.stateDir
          ]
          ++ lib.concatMap (r: [
            "--allow-root"
            r
          ]) cfg.allowedRoots
        );
        User = cfg.user;
        Group = cfg.user;
        Restart = "on-failure";
        RestartSec = 2;
        UMask = "0077";
        # Only the state and the project roots are writable.
        ProtectSystem = "strict";
        ProtectHome = "read-only";
        ReadWritePaths = [ cfg.stateDir ] ++ cfg.allowedRoots;
        StateDirectory = lib.mkIf (lib.hasPrefix "/var/lib/" cfg.stateDir) (
          lib.removePrefix "/var/lib/" cfg.stateDir
        );
        PrivateTmp = true;
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        RestrictSUIDSGID = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        LockPersonality = true;
        RestrictRealtime = true;
        SystemCallArchitectures = "native";
        # pasta needs netlink; sandboxes need AF_UNIX and IP.
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
          "AF_NETLINK"
        ];
        # Not set, on purpose: RestrictNamespaces (every sandbox is a set of namespaces) and
        # MemoryDenyWriteExecute (agents run on JITs, e.g. Node.js).
      };
    };
  };
}
