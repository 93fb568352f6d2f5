//! `bits set`: Set-BitsTransfer.

use bits_proto::Request;

use crate::args::SetArgs;
use crate::failure::Failure;

/// Runs `bits set`; at least one property must be given.
pub async fn run(args: SetArgs) -> anyhow::Result<()> {
    if args.properties.is_empty() && !args.clear_credentials && !args.take_ownership {
        return Err(Failure::Usage(
            "nothing to change: give at least one of --name, --description, --priority, \
             --retry-interval, --retry-timeout, --max-download-time, --reply-file, \
             --connections, --credential, --proxy-credential, --proxy-usage, --proxy-list, \
             --proxy-bypass, --security-flags, --ca-cert, --header, --header-write-only, \
             --notify-cmd, --notify-flags, --max-bandwidth, --clear-credentials, --take-ownership"
                .into(),
        )
        .into());
    }
    let mut properties = super::properties(&args.properties, &super::cwd()?, false)?;
    properties.clear_credentials = args.clear_credentials;
    properties.take_ownership = args.take_ownership;
    let mut conn = super::connect().await?;
    let job = conn
        .job(&Request::Set {
            job: args.job,
            properties,
        })
        .await?;
    super::print_job_if(args.json, &job)
}
