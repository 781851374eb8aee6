import HeraldCore

/// A job as last read by the hub, with its status event encoded once for all followers.
struct CachedJob {
    let job: Job
    /// The job JSON text with links.
    let json: String
    /// `event: status` with the plain seq id, framed for request id 1 (what nginx uses), shared by all plain followers.
    let sharedFrame: [UInt8]

    init(_ job: Job, urlPrefix: String) {
        self.job = job
        json = job.json(urlPrefix: urlPrefix).text
        var frame: [UInt8] = []
        let text = ServerSentEvents.event("status", id: StreamCursor(seq: job.seq).eventID, data: json)
        FastCGIRecord.appendStdout(Array(text.utf8), requestID: 1, to: &frame)
        sharedFrame = frame
    }
}
