------------------------------- MODULE Quorum -------------------------------
(***************************************************************************)
(* The `quorum` model of sixfold (model/src/check/quorum.rs), written a    *)
(* second time, in TLA+, as an independent cross-check.                    *)
(*                                                                         *)
(* Six segments, one writer (epoch 1), the app client and, with READS > 0, *)
(* the reader client.  The writer opens the volume with a 3/6 quorum read  *)
(* of SCLs, ships each write to all six segments, advances VDL to the      *)
(* PGCL of its SCL bookkeeping and acknowledges commits at or below it;    *)
(* a read goes to one segment whose SCL (as last reported) covers VDL.     *)
(* The network delays and reorders; segments may crash-restart from their  *)
(* saved log and lose their disk for good.                                 *)
(*                                                                         *)
(* The variables are the Rust model's state, component by component (see  *)
(* crosscheck/README.md for the table), so that TLC's count of distinct    *)
(* states equals the count of `sixfold check quorum --no-symmetry --dfs`.  *)
(* That is why the spec keeps what a plain protocol spec would leave out:  *)
(* the writer's open choices, a lost segment's frozen memory, a message    *)
(* whose delivery is a no-op staying in flight, the dead-letter filter,    *)
(* and the ghost history exactly as the Rust model keeps it.               *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets, TLC

CONSTANTS
    WRITES,     \* writes the app client issues (--writes)
    READS,      \* reads the reader client issues (--reads); 0 = no reader
    CRASHES,    \* segment crash-restarts (--crashes)
    LOSSES,     \* permanent disk losses (--losses), at most 3
    INFLIGHT,   \* writes the app client may have outstanding (--inflight)
    LAL,        \* how far allocation may run ahead of VDL (--lal)
    WQ,         \* write quorum: 4, or 3 under the mutant write-quorum-3
    LOSSY,      \* whether the network may lose messages (--lossy)
    SPURIOUS    \* whether the open retry may fire early (--spurious-timeouts)

ASSUME WRITES \in 1..6 /\ READS \in 0..3 /\ CRASHES \in 0..4
ASSUME LOSSES \in 0..3 /\ INFLIGHT \in 1..WRITES /\ LAL \in 1..64
ASSUME WQ \in 1..6 /\ LOSSY \in BOOLEAN /\ SPURIOUS \in BOOLEAN

\* Actor ids, as in the Rust model: segments 0..5, the writer, the clients.
Segs == 0..5
W  == 6
C0 == 7         \* the app client
R  == 8         \* the reader client (exists only with READS > 0)
Clients == IF READS > 0 THEN {C0, R} ELSE {C0}
RQ == 3         \* read quorum (Config::read_quorum)
MaxDown == 3    \* an AZ plus one

Max(S) == CHOOSE x \in S : \A y \in S : y <= x
Min(S) == CHOOSE x \in S : \A y \in S : x <= y

(***************************************************************************)
(* Client scripts (QuorumModel::build): request number = index.            *)
(***************************************************************************)
AppScript ==
    IF INFLIGHT > 1
    THEN [r \in 0..WRITES |->
            IF r < WRITES THEN [op |-> "W", val |-> 10 * (r + 1)]
                          ELSE [op |-> "R", val |-> 0]]
    ELSE [r \in 0..(2 * WRITES - 1) |->
            IF r % 2 = 0 THEN [op |-> "W", val |-> 10 * (r \div 2 + 1)]
                         ELSE [op |-> "R", val |-> 0]]
ReaderScript == [r \in 0..(READS - 1) |-> [op |-> "R", val |-> 0]]
Script(c) == IF c = C0 THEN AppScript ELSE ReaderScript
Window(c) == IF c = C0 THEN INFLIGHT ELSE 1

\* Client::may_issue: a read only when nothing is outstanding, a write while
\* the window has room and only writes are outstanding.
MayIssue(c, issued, done) ==
    LET out == issued - Cardinality(done) IN
    IF issued \notin DOMAIN Script(c) THEN FALSE
    ELSE IF Script(c)[issued].op = "R" THEN out = 0
    ELSE /\ out < Window(c)
         /\ \A q \in (0..(issued - 1)) \ done : Script(c)[q].op = "W"

\* Client::fill: the new `issued` after issuing while allowed.
RECURSIVE FillTo(_, _, _)
FillTo(c, issued, done) ==
    IF MayIssue(c, issued, done) THEN FillTo(c, issued + 1, done) ELSE issued

(***************************************************************************)
(* Messages (protocol/msg.rs).  Every message has the same fields, so TLC  *)
(* can compare any two; unused fields are 0.  The key is always 0 and the  *)
(* epoch always 1 in this model, so neither is carried; a version's epoch  *)
(* is 0 for the initial value (LSN 0) and 1 otherwise.                     *)
(***************************************************************************)
Msg(s, d, t, a, b, c, e, f, g) ==
    [src |-> s, dst |-> d, t |-> t, a |-> a, b |-> b, c |-> c, e |-> e, f |-> f, g |-> g]
OpenQuery(s)               == Msg(W, s, "OpenQuery", 0, 0, 0, 0, 0, 0)
SclReport(s, scl)          == Msg(s, W, "SclReport", scl, 0, 0, 0, 0, 0)
WriteMsg(c, req, v)        == Msg(c, W, "Write", req, v, 0, 0, 0, 0)
ReadMsg(c, req)            == Msg(c, W, "Read", req, 0, 0, 0, 0, 0)
WriteOk(c, req, lsn)       == Msg(W, c, "WriteOk", req, lsn, 0, 0, 0, 0)
ReadOk(c, req, vl, vv)     == Msg(W, c, "ReadOk", req, vl, vv, 0, 0, 0)
AppendMsg(s, lsn, v)       == Msg(W, s, "Append", lsn, v, 0, 0, 0, 0)
Ack(s, lsn, scl)           == Msg(s, W, "Ack", lsn, scl, 0, 0, 0, 0)
ReadAt(s, c, req, pt)      == Msg(W, s, "ReadAt", c, req, pt, 0, 0, 0)
\* has = 1: Some(version <<vl, vv>>); has = 0: None (refused)
ReadReply(s, c, req, has, vl, vv, scl) == Msg(s, W, "ReadReply", c, req, has, vl, vv, scl)

ClientMsg(c, req) ==
    IF Script(c)[req].op = "W" THEN WriteMsg(c, req, Script(c)[req].val)
                               ELSE ReadMsg(c, req)

VARIABLES
    \* segments
    mem,            \* mem[i]: segment i's in-memory Log, a set of <<lsn, value>>
    disk,           \* disk[i]: its saved storage, <<>> (None) or <<log>> (Some)
    \* the writer (WriterState)
    wOpen,          \* opening = None
    wAnswered,      \* opening = Some(answered), {} once open
    wQueried,       \* queried
    wLast,          \* last_lsn
    wScl,           \* scl[6], the SCL bookkeeping
    wVdl,           \* vdl
    wQueue,         \* commit_queue: <<[lsn, client, req]>>
    wRetry,         \* the OpenRetry timer is set
    wOpenChoice,    \* random choice "open": the segments offered ({} = no key)
    wReadChoices,   \* random choices "read c/req": [client, req, point, segs]
    \* the clients (ClientState) and the reader's crashed flag
    cIssued, cDone, readerUp,
    \* the network: the set of envelopes in flight
    net,
    \* the ghost history (check::quorum::Ghost)
    gCommitted, gOpenReads, gStale, gUncommitted, gCommittedRead,
    gEstablished, gReadHigh, lost, crashes

segVars    == <<mem, disk>>
writerVars == <<wOpen, wAnswered, wQueried, wLast, wScl, wVdl, wQueue, wRetry,
                wOpenChoice, wReadChoices>>
clientVars == <<cIssued, cDone, readerUp>>
ghostVars  == <<gCommitted, gOpenReads, gStale, gUncommitted, gCommittedRead,
                gEstablished, gReadHigh, lost, crashes>>
vars == <<segVars, writerVars, clientVars, net, ghostVars>>

(***************************************************************************)
(* The segment's log (protocol/log.rs), with one key and one epoch.        *)
(***************************************************************************)
Lsns(log) == {r[1] : r \in log}
\* Log::scl: the highest L with every LSN in 1..L held.
SCL(log) == CHOOSE l \in 0..Cardinality(log) :
                /\ \A k \in 1..l : k \in Lsns(log)
                /\ (l + 1) \notin Lsns(log)
\* Log::read_at(0, point): the newest record at or below the point.
ReadAtPoint(log, pt) ==
    LET rs == {r \in log : r[1] <= pt} IN
    IF rs = {} THEN <<0, 0>> ELSE CHOOSE r \in rs : \A q \in rs : q[1] <= r[1]
DiskLog(i) == IF disk[i] = <<>> THEN {} ELSE disk[i][1]

\* Writer::pgcl: the WQ-th highest SCL.
PGCL(scl) ==
    LET vals == {scl[i] : i \in Segs} IN
    Max({v \in vals : Cardinality({i \in Segs : scl[i] >= v}) >= WQ})

(***************************************************************************)
(* The network.  Stateright's is a multiset; the assertion shows no step   *)
(* ever sends a message identical to one in flight, so a set is the same.  *)
(***************************************************************************)
Add(n, ms) ==
    IF ms \cap n = {} THEN n \cup ms
    ELSE Assert(FALSE, "a duplicate message in flight: the network would need to be a bag")

\* QuorumModel::forget_lost: messages to a lost segment are dropped.
ForgetLost(n, ls) == {m \in n : m.dst \notin ls}

\* QuorumModel::forget_dead_letters (after forget_lost), judged on the new
\* writer state: a NotWriter (none here), an SclReport to an open writer, an
\* Ack that reports no more than the writer's bookkeeping.
Clean(n, open, scl) ==
    {m \in ForgetLost(n, lost) :
        ~ \/ m.t = "NotWriter"
          \/ m.dst = W /\ m.t = "SclReport" /\ open
          \/ m.dst = W /\ m.t = "Ack" /\ open /\ m.b <= scl[m.src]}

(***************************************************************************)
(* The ghost history (Ghost::observe_send), updated as messages are sent.  *)
(***************************************************************************)
OpenRead(c, req) == [client |-> c, req |-> req, floor |-> gCommitted]

RECURSIVE PushReads(_, _, _, _)
\* The OpenReads of the Reads a client sends for requests from..to-1.
PushReads(seq, c, from, to) ==
    IF from >= to THEN seq
    ELSE PushReads(IF Script(c)[from].op = "R" THEN Append(seq, OpenRead(c, from)) ELSE seq,
                   c, from + 1, to)

RemoveAt(s, i) == [j \in 1..(Len(s) - 1) |-> IF j < i THEN s[j] ELSE s[j + 1]]

\* The writer sends ReadOk{req, version <<vl, vv>>} to client c.
ObserveReadOk(c, req, vl, vv) ==
    LET idx == {i \in 1..Len(gOpenReads) :
                    gOpenReads[i].client = c /\ gOpenReads[i].req = req}
    IN
    IF idx = {}
    THEN UNCHANGED <<gOpenReads, gStale, gReadHigh, gCommittedRead>>
    ELSE LET at == Min(idx) IN
         /\ gOpenReads' = RemoveAt(gOpenReads, at)
         /\ gStale' = (gStale \/ vl < gOpenReads[at].floor)
         /\ gReadHigh' = Max({gReadHigh, vl})
         /\ gCommittedRead' = (gCommittedRead \/ (vl > 0 /\ vl <= gCommitted))

(***************************************************************************)
(* Initial state: every actor started (ActorModel::init_states), then the  *)
(* reader put down (QuorumModel::init_states): its first Read is taken off *)
(* the network and out of the ghost's open reads, as if never sent.        *)
(***************************************************************************)
AppStart == FillTo(C0, 0, {})

Init ==
    /\ mem = [i \in Segs |-> {}]
    /\ disk = [i \in Segs |-> <<>>]
    /\ wOpen = FALSE
    /\ wAnswered = {}
    /\ wQueried = 0..(RQ - 1)
    /\ wLast = 0
    /\ wScl = [i \in Segs |-> 0]
    /\ wVdl = 0
    /\ wQueue = <<>>
    /\ wRetry = TRUE
    /\ wOpenChoice = {}
    /\ wReadChoices = {}
    /\ cIssued = [c \in Clients |-> IF c = C0 THEN AppStart ELSE FillTo(R, 0, {})]
    /\ cDone = [c \in Clients |-> {}]
    /\ readerUp = FALSE
    /\ net = {OpenQuery(i) : i \in 0..(RQ - 1)} \cup {ClientMsg(C0, q) : q \in 0..(AppStart - 1)}
    /\ gCommitted = 0   \* before gOpenReads, whose floors read it
    /\ gOpenReads = PushReads(<<>>, C0, 0, AppStart)
    /\ gStale = FALSE
    /\ gUncommitted = FALSE
    /\ gCommittedRead = FALSE
    /\ gEstablished = FALSE
    /\ gReadHigh = 0
    /\ lost = {}
    /\ crashes = 0

Down(id) == id \in lost \/ (id = R /\ ~readerUp)

(***************************************************************************)
(* Deliveries.  A delivery whose step is a no-op (Stateright: the state    *)
(* untouched and nothing output) is not a step: the message stays.  Those  *)
(* are the negated conditions in the guards.                               *)
(***************************************************************************)

\* StorageNode::on_open_query (epoch 1: nothing to adopt).
SegOpenQuery(m) ==
    /\ m.t = "OpenQuery"
    /\ net' = Clean(Add(net \ {m}, {SclReport(m.dst, SCL(mem[m.dst]))}), wOpen, wScl)
    /\ UNCHANGED <<segVars, writerVars, clientVars, ghostVars>>

\* StorageNode::on_append: insert (and save) if new, then ack with the SCL.
SegAppend(m) ==
    LET i == m.dst
        new == m.a \notin Lsns(mem[i])
        log == IF new THEN mem[i] \cup {<<m.a, m.b>>} ELSE mem[i]
    IN
    /\ m.t = "Append"
    /\ mem' = [mem EXCEPT ![i] = log]
    /\ disk' = IF new THEN [disk EXCEPT ![i] = <<log>>] ELSE disk
    /\ net' = Clean(Add(net \ {m}, {Ack(i, m.a, SCL(log))}), wOpen, wScl)
    /\ UNCHANGED <<writerVars, clientVars, ghostVars>>

\* StorageNode::read: served only at a point within SCL.
SegReadAt(m) ==
    LET i == m.dst
        scl == SCL(mem[i])
        has == m.c <= scl
        v == IF has THEN ReadAtPoint(mem[i], m.c) ELSE <<0, 0>>
    IN
    /\ m.t = "ReadAt"
    /\ net' = Clean(Add(net \ {m},
                        {ReadReply(i, m.a, m.b, IF has THEN 1 ELSE 0, v[1], v[2], scl)}),
                    wOpen, wScl)
    /\ gUncommitted' = (gUncommitted \/ (has /\ v[1] > gCommitted))
    /\ UNCHANGED <<segVars, writerVars, clientVars, gCommitted, gOpenReads, gStale,
                   gCommittedRead, gEstablished, gReadHigh, lost, crashes>>

\* Writer::on_scl_report, and Writer::recover once a read quorum answered.
WriterSclReport(m) ==
    LET s == m.src
        scl == [wScl EXCEPT ![s] = Max({@, m.a})]
        ans == wAnswered \cup {s}
        top == Max({scl[i] : i \in Segs})
        done == Cardinality(ans) >= RQ
    IN
    /\ m.t = "SclReport"
    /\ ~wOpen
    /\ wScl' = scl
    /\ wOpen' = done
    /\ wAnswered' = IF done THEN {} ELSE ans
    /\ wRetry' = IF done THEN FALSE ELSE wRetry
    /\ wOpenChoice' = IF done THEN {} ELSE wOpenChoice
    /\ wVdl' = IF done THEN top ELSE wVdl
    /\ wLast' = IF done THEN top ELSE wLast
    /\ net' = Clean(net \ {m}, wOpen', wScl')
    /\ UNCHANGED <<segVars, wQueried, wQueue, wReadChoices, clientVars, ghostVars>>

\* Writer::on_write: held (a no-op) until open and while LAL binds.
WriterWrite(m) ==
    LET lsn == wLast + 1 IN
    /\ m.t = "Write"
    /\ wOpen
    /\ lsn <= wVdl + LAL
    /\ wLast' = lsn
    /\ wQueue' = Append(wQueue, [lsn |-> lsn, client |-> m.src, req |-> m.a])
    /\ net' = Clean(Add(net \ {m}, {AppendMsg(i, lsn, m.b) : i \in Segs}), wOpen, wScl)
    /\ UNCHANGED <<segVars, wOpen, wAnswered, wQueried, wScl, wVdl, wRetry, wOpenChoice,
                   wReadChoices, clientVars, ghostVars>>

\* Writer::on_ack: raise the bookkeeping, advance VDL, acknowledge commits.
WriterAck(m) ==
    LET s == m.src
        scl == [wScl EXCEPT ![s] = m.b]
        vdl == Min({PGCL(scl), wLast})
        adv == vdl > wVdl
        acked == SelectSeq(wQueue, LAMBDA p : p.lsn <= vdl)
        rest == SelectSeq(wQueue, LAMBDA p : p.lsn > vdl)
        oks == {WriteOk(acked[k].client, acked[k].req, acked[k].lsn) : k \in 1..Len(acked)}
    IN
    /\ m.t = "Ack"
    /\ m.b > wScl[s]
    /\ wScl' = scl
    /\ wVdl' = IF adv THEN vdl ELSE wVdl
    /\ wQueue' = IF adv THEN rest ELSE wQueue
    /\ net' = Clean(Add(net \ {m}, IF adv THEN oks ELSE {}), wOpen, wScl')
    /\ gCommitted' = IF adv /\ acked /= <<>>
                     THEN Max({gCommitted} \cup {acked[k].lsn : k \in 1..Len(acked)})
                     ELSE gCommitted
    /\ gEstablished' = (gEstablished \/ (adv /\ acked /= <<>>))
    /\ UNCHANGED <<segVars, wOpen, wAnswered, wQueried, wLast, wRetry, wOpenChoice,
                   wReadChoices, clientVars, gOpenReads, gStale, gUncommitted,
                   gCommittedRead, gReadHigh, lost, crashes>>

\* Writer::offer_read: the read choice for (c, req) at point pt.
Offer(choices, scl, c, req, pt) ==
    LET segs == {i \in Segs : scl[i] >= pt}
        others == {x \in choices : ~(x.client = c /\ x.req = req)}
    IN IF segs = {} THEN choices
       ELSE others \cup {[client |-> c, req |-> req, point |-> pt, segs |-> segs]}

\* Writer's Read: offered once open.  A read that would be held
\* (Writer::hold_read, the repair path) cannot happen in this model: the
\* assertion makes TLC check that.
WriterRead(m) ==
    /\ m.t = "Read"
    /\ wOpen
    /\ Assert(PGCL(wScl) >= wVdl, "a read is held: the repair path is not modelled")
    /\ \E i \in Segs : wScl[i] >= wVdl
    /\ wReadChoices' = Offer(wReadChoices, wScl, m.src, m.a, wVdl)
    /\ net' = Clean(net \ {m}, wOpen, wScl)
    /\ UNCHANGED <<segVars, wOpen, wAnswered, wQueried, wLast, wScl, wVdl, wQueue, wRetry,
                   wOpenChoice, clientVars, ghostVars>>

\* Writer's ReadReply: pass a version on; a refusal corrects the bookkeeping
\* and offers the read again.
WriterReadReply(m) ==
    /\ m.t = "ReadReply"
    /\ IF m.c = 1
       THEN /\ net' = Clean(Add(net \ {m}, {ReadOk(m.a, m.b, m.e, m.f)}), wOpen, wScl)
            /\ ObserveReadOk(m.a, m.b, m.e, m.f)
            /\ UNCHANGED <<writerVars, gCommitted, gUncommitted, gEstablished>>
       ELSE LET scl == [wScl EXCEPT ![m.src] = m.g] IN
            /\ wScl' = scl
            /\ wReadChoices' = Offer(wReadChoices, scl, m.a, m.b, wVdl)
            /\ net' = Clean(net \ {m}, wOpen, scl)
            /\ UNCHANGED <<wOpen, wAnswered, wQueried, wLast, wVdl, wQueue, wRetry,
                           wOpenChoice, ghostVars>>
    /\ UNCHANGED <<segVars, clientVars, lost, crashes>>

\* Client::on_msg: a reply completes its request and issues what may follow.
ClientReply(m) ==
    LET c == m.dst
        req == m.a
        done == cDone[c] \cup {req}
        issued == FillTo(c, cIssued[c], done)
    IN
    /\ m.t \in {"WriteOk", "ReadOk"}
    /\ req < cIssued[c]
    /\ req \notin cDone[c]
    /\ cDone' = [cDone EXCEPT ![c] = done]
    /\ cIssued' = [cIssued EXCEPT ![c] = issued]
    /\ net' = Clean(Add(net \ {m}, {ClientMsg(c, q) : q \in cIssued[c]..(issued - 1)}),
                    wOpen, wScl)
    /\ gOpenReads' = PushReads(gOpenReads, c, cIssued[c], issued)
    /\ UNCHANGED <<segVars, writerVars, readerUp, gCommitted, gStale, gUncommitted,
                   gCommittedRead, gEstablished, gReadHigh, lost, crashes>>

Deliver(m) ==
    /\ ~Down(m.dst)
    /\ IF m.dst \in Segs
       THEN SegOpenQuery(m) \/ SegAppend(m) \/ SegReadAt(m)
       ELSE IF m.dst = W
       THEN WriterSclReport(m) \/ WriterWrite(m) \/ WriterAck(m) \/ WriterRead(m)
            \/ WriterReadReply(m)
       ELSE ClientReply(m)

\* A lossy network drops a message (--lossy).
Drop(m) ==
    /\ LOSSY
    /\ net' = Clean(net \ {m}, wOpen, wScl)
    /\ UNCHANGED <<segVars, writerVars, clientVars, ghostVars>>

(***************************************************************************)
(* The writer's timer and choices.                                          *)
(***************************************************************************)
\* QuorumModel::open_is_stuck: still opening, and a segment asked is lost.
Stuck == ~wOpen /\ (wQueried \ wAnswered) \cap lost /= {}

\* Writer::on_timeout(OpenRetry): offer one more segment to ask.
TimeoutRetry ==
    /\ wRetry
    /\ SPURIOUS \/ Stuck
    /\ wRetry' = FALSE
    /\ wOpenChoice' = IF wOpen \/ wQueried = {} \/ Segs \ wQueried = {}
                      THEN wOpenChoice ELSE Segs \ wQueried
    /\ net' = Clean(net, wOpen, wScl)
    /\ UNCHANGED <<segVars, wOpen, wAnswered, wQueried, wLast, wScl, wVdl, wQueue,
                   wReadChoices, clientVars, ghostVars>>

\* Choice::Ask picked: the key goes; ask the segment unless asked already.
SelectAsk(s) ==
    LET ask == ~wOpen /\ s \notin wQueried IN
    /\ s \in wOpenChoice
    /\ wOpenChoice' = {}
    /\ wQueried' = IF ask THEN wQueried \cup {s} ELSE wQueried
    /\ wRetry' = IF ask /\ Cardinality(wQueried') < 6 THEN TRUE ELSE wRetry
    /\ net' = Clean(Add(net, IF ask THEN {OpenQuery(s)} ELSE {}), wOpen, wScl)
    /\ UNCHANGED <<segVars, wOpen, wAnswered, wLast, wScl, wVdl, wQueue, wReadChoices,
                   clientVars, ghostVars>>

\* Choice::ReadFrom picked: the key goes; send ReadAt to that segment.
SelectRead(x, s) ==
    /\ wReadChoices' = wReadChoices \ {x}
    /\ net' = Clean(Add(net, {ReadAt(s, x.client, x.req, x.point)}), wOpen, wScl)
    /\ UNCHANGED <<segVars, wOpen, wAnswered, wQueried, wLast, wScl, wVdl, wQueue, wRetry,
                   wOpenChoice, clientVars, ghostVars>>

(***************************************************************************)
(* The wrapper's actions (QuorumModel::actions): restart, disk loss, the   *)
(* reader's start.  None of them is followed by the dead-letter filter.    *)
(***************************************************************************)
\* A crash-restart from the saved log, skipped when it changes nothing (the
\* gossip timer is set exactly when the log has a gap, so equal logs mean
\* equal timers; the network never changes).
Restart(i) ==
    /\ i \notin lost
    /\ crashes < CRASHES
    /\ mem[i] /= DiskLog(i)
    /\ mem' = [mem EXCEPT ![i] = DiskLog(i)]
    /\ crashes' = crashes + 1
    /\ UNCHANGED <<disk, writerVars, clientVars, net, gCommitted, gOpenReads, gStale,
                   gUncommitted, gCommittedRead, gEstablished, gReadHigh, lost>>

\* The disk is gone for good; the segment stays down, its memory as it was.
LoseDisk(i) ==
    /\ i \notin lost
    /\ Cardinality(lost) < Min({LOSSES, MaxDown})
    /\ lost' = lost \cup {i}
    /\ disk' = [disk EXCEPT ![i] = <<>>]
    /\ net' = ForgetLost(net, lost')
    /\ UNCHANGED <<mem, writerVars, clientVars, gCommitted, gOpenReads, gStale,
                   gUncommitted, gCommittedRead, gEstablished, gReadHigh, crashes>>

\* The reader starts afresh and sends its first Read.
StartReader ==
    LET issued == FillTo(R, 0, {}) IN
    /\ READS > 0
    /\ ~readerUp
    /\ readerUp' = TRUE
    /\ cIssued' = [cIssued EXCEPT ![R] = issued]
    /\ cDone' = [cDone EXCEPT ![R] = {}]
    /\ net' = Add(net, {ClientMsg(R, q) : q \in 0..(issued - 1)})
    /\ gOpenReads' = PushReads(gOpenReads, R, 0, issued)
    /\ UNCHANGED <<segVars, writerVars, gCommitted, gStale, gUncommitted, gCommittedRead,
                   gEstablished, gReadHigh, lost, crashes>>

Next ==
    \/ \E m \in net : Deliver(m) \/ Drop(m)
    \/ TimeoutRetry
    \/ \E s \in Segs : SelectAsk(s)
    \/ \E x \in wReadChoices : \E s \in x.segs : SelectRead(x, s)
    \/ \E i \in Segs : Restart(i) \/ LoseDisk(i)
    \/ StartReader

Spec == Init /\ [][Next]_vars

(***************************************************************************)
(* The Rust model's `always` properties (check/properties.rs, QUORUM).      *)
(***************************************************************************)
\* Every acknowledged commit is on enough surviving segments' disks that
\* every read quorum (3) of survivors holds it (Ghost::durable).
Durability ==
    \A l \in 1..gCommitted :
        (6 - Cardinality(lost))
          - Cardinality({i \in Segs \ lost : l \in Lsns(DiskLog(i))}) < 3
NoStaleRead == ~gStale
NoUncommittedRead == ~gUncommitted

\* Its `sometimes` properties, as invariants whose violation is the witness
\* (checked one at a time by run.sh).
NoCommit == gCommitted = 0
NoCommittedRead == ~gCommittedRead
NoLossAfterCommit == ~(lost /= {} /\ gCommitted > 0 /\ Durability)
=============================================================================
