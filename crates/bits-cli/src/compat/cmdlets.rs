//! The BitsTransfer cmdlets and their parameters, as Microsoft documents
//! them: names, aliases, positions, and the ones bits refuses (with why).

use super::params::{Kind, Param};

/// A BitsTransfer cmdlet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmdlet {
    /// Start-BitsTransfer.
    Start,
    /// Get-BitsTransfer.
    Get,
    /// Add-BitsFile.
    Add,
    /// Set-BitsTransfer.
    Set,
    /// Suspend-BitsTransfer.
    Suspend,
    /// Resume-BitsTransfer.
    Resume,
    /// Complete-BitsTransfer.
    Complete,
    /// Remove-BitsTransfer.
    Remove,
}

impl Cmdlet {
    /// Every cmdlet, in the contract's order.
    pub const ALL: [Cmdlet; 8] = [
        Cmdlet::Start,
        Cmdlet::Get,
        Cmdlet::Add,
        Cmdlet::Set,
        Cmdlet::Suspend,
        Cmdlet::Resume,
        Cmdlet::Complete,
        Cmdlet::Remove,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Cmdlet::Start => "Start-BitsTransfer",
            Cmdlet::Get => "Get-BitsTransfer",
            Cmdlet::Add => "Add-BitsFile",
            Cmdlet::Set => "Set-BitsTransfer",
            Cmdlet::Suspend => "Suspend-BitsTransfer",
            Cmdlet::Resume => "Resume-BitsTransfer",
            Cmdlet::Complete => "Complete-BitsTransfer",
            Cmdlet::Remove => "Remove-BitsTransfer",
        }
    }

    /// Its parameters.
    pub fn params(self) -> Vec<Param> {
        let mut params: Vec<Param> = match self {
            Cmdlet::Start => {
                let mut p = vec![
                    Param::new("Source", Kind::Array).at(0),
                    Param::new("Destination", Kind::Array).at(1),
                    Param::new("Asynchronous", Kind::Switch),
                    Param::new("Suspended", Kind::Switch),
                    Param::new("TransferType", Kind::Value),
                ];
                p.extend(PROPERTIES);
                p
            }
            Cmdlet::Get => vec![
                Param::new("Name", Kind::Array).aliases(&["n"]).at(0),
                Param::new("JobId", Kind::Array).aliases(&["id"]),
                Param::new("AllUsers", Kind::Switch).aliases(&["all"]),
            ],
            Cmdlet::Add => vec![
                BITS_JOB,
                Param::new("Source", Kind::Array).at(1),
                Param::new("Destination", Kind::Array).at(2),
            ],
            Cmdlet::Set => {
                let mut p = vec![
                    BITS_JOB,
                    Param::new("SetOwnerToCurrentUser", Kind::Switch).aliases(&["so"]),
                ];
                p.extend(PROPERTIES);
                p
            }
            Cmdlet::Resume => vec![
                BITS_JOB,
                Param::new("Asynchronous", Kind::Switch).aliases(&["as"]),
            ],
            Cmdlet::Suspend | Cmdlet::Complete | Cmdlet::Remove => vec![BITS_JOB],
        };
        params.push(Param::new("ComputerName", Kind::Value).aliases(&["cn"]));
        params.extend(COMMON);
        if !matches!(self, Cmdlet::Get) {
            params.extend(SHOULD_PROCESS);
        }
        params
    }
}

/// The job a cmdlet acts on.
const BITS_JOB: Param = Param::new("BitsJob", Kind::Array).aliases(&["b"]).at(0);

/// The job properties of Start- and Set-BitsTransfer.
const PROPERTIES: [Param; 27] = [
    Param::new("DisplayName", Kind::Value).aliases(&["dn"]),
    Param::new("Description", Kind::Value).aliases(&["d"]),
    Param::new("Priority", Kind::Value).aliases(&["p"]),
    Param::new("Credential", Kind::Value).aliases(&["cred"]),
    Param::new("Authentication", Kind::Value).aliases(&["au"]),
    Param::new("ProxyUsage", Kind::Value).aliases(&["pu"]),
    Param::new("ProxyList", Kind::Array).aliases(&["pl"]),
    Param::new("ProxyBypass", Kind::Array).aliases(&["pb"]),
    Param::new("ProxyCredential", Kind::Value).aliases(&["pc"]),
    Param::new("ProxyAuthentication", Kind::Value).aliases(&["pa"]),
    Param::new("RetryInterval", Kind::Value),
    Param::new("RetryTimeout", Kind::Value),
    Param::new("MaxDownloadTime", Kind::Value),
    Param::new("CustomHeaders", Kind::Array),
    Param::new("CustomHeadersWriteOnly", Kind::Switch),
    Param::new("SecurityFlags", Kind::Array),
    Param::new("NotifyFlags", Kind::Value),
    Param::new("NotifyCmdLine", Kind::Array),
    Param::unsupported(
        "TransferPolicy",
        Kind::Array,
        "bits has no cost-aware (metered network) policy; background priorities use only \
         bandwidth nobody else is using",
    ),
    Param::unsupported(
        "UseStoredCredential",
        Kind::Value,
        "bits has no credential store; give -Credential or -ProxyCredential",
    ),
    Param::unsupported(
        "Dynamic",
        Kind::Switch,
        "bits has no dynamic-content mode; every download is resumable and checked against \
         one version of the file",
    ),
    Param::unsupported(
        "HttpMethod",
        Kind::Value,
        "bits downloads with GET and resumes with ranges",
    ),
    Param::unsupported(
        "ACLFlags",
        Kind::Value,
        "files are created with the job owner's rights and umask; there are no SMB ACLs to copy",
    ),
    Param::unsupported(
        "CertStoreLocation",
        Kind::Value,
        "bits has no client certificates",
    ),
    Param::unsupported(
        "CertStoreName",
        Kind::Value,
        "bits has no client certificates",
    ),
    Param::unsupported("CertHash", Kind::Value, "bits has no client certificates"),
    Param::unsupported(
        "MaxDownloadSize",
        Kind::Value,
        "bits has no dynamic-content mode (see -Dynamic)",
    ),
];

/// PowerShell's common parameters: -Verbose is taken, the others refused.
const COMMON: [Param; 4] = [
    Param::new("Verbose", Kind::Switch).aliases(&["vb"]),
    Param::unsupported(
        "ErrorAction",
        Kind::Value,
        "a failure ends the command with a non-zero exit code; test $? in the shell",
    ),
    Param::unsupported(
        "WarningAction",
        Kind::Value,
        "warnings go to standard error; redirect it in the shell",
    ),
    Param::unsupported(
        "OutVariable",
        Kind::Value,
        "capture the output in the shell: job=$(…)",
    ),
];

/// -WhatIf and -Confirm, which the state-changing cmdlets take.
const SHOULD_PROCESS: [Param; 2] = [
    Param::unsupported(
        "WhatIf",
        Kind::Switch,
        "bits does not simulate; run Get-BitsTransfer to see what a command would act on",
    )
    .aliases(&["wi"]),
    Param::unsupported("Confirm", Kind::Switch, "bits does not ask before acting").aliases(&["cf"]),
];
