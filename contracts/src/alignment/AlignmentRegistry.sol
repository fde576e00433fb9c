// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Flow} from "../storage/Flow.sol";
import {FlowMerkle} from "../storage/FlowMerkle.sol";
import {NodeRegistry} from "../NodeRegistry.sol";
import {InferenceServing} from "../InferenceServing.sol";
import {DASigners} from "../da/DASigners.sol";

/// @title AlignmentRegistry: bonds, auditors, and the faults the chain itself can prove (issue 17).
/// @notice zgos/alignment/spec/ specifies every rule here; the Python mirrors are cross-checked.
/// * Operators are the accounts that announce a storage node in `NodeRegistry`, register a DA
///   signer in `DASigners` or an inference service in `InferenceServing`; each posts a bond per kind. Unbonding
///   waits `UNBOND_DELAY_BLOCKS` and for every open challenge, so a pending fault still costs.
/// * Auditors register with a stake; only they open challenges, prove compute faults and report.
/// * Storage challenges (proof of data possession): the challenger presents the node's own signed
///   `Custody` of a file (its flow range and the shard the node holds) and pays `challengeFee`.
///   The sector is drawn from the hash of block `opened + SEED_DELAY_BLOCKS`, unknown to all at
///   opening. The node answers with the 256-byte sector and its path to the flow root recorded
///   after the file's submission (checked with `FlowMerkle`, as `PoraMine` checks pieces) within
///   `ANSWER_WINDOW_BLOCKS` and collects the fee; otherwise anyone calls `slashUnanswered` and
///   `STORAGE_SLASH_BPS` of the bond, with the fee, goes to the challenger.
/// * Compute faults: a provider-signed EIP-712 `Response` (zgos/compute/spec/vouchers.py) whose
///   fee is not `input * inputPrice + output * outputPrice` at the registered prices, or whose
///   model hash is not the registered one, is slashed `COMPUTE_SLASH_BPS` to the auditor. It is
///   judged against the service as registered now and only if signed by the signer registered
///   now: a provider that changes prices or model rotates its signer, retiring old responses.
/// * Reports: findings the chain cannot check, with their evidence stored on Flow. They move a
///   score and count faults; they never slash.
contract AlignmentRegistry is EIP712 {
    uint8 public constant KIND_STORAGE = 0; // NodeRegistry.KIND_STORAGE
    uint8 public constant KIND_DA_SIGNER = 2; // NodeRegistry.KIND_DA_SIGNER (registered in DASigners)
    uint8 public constant KIND_COMPUTE = 3; // NodeRegistry.KIND_COMPUTE (InferenceServing)

    uint256 public constant SEED_DELAY_BLOCKS = 1; // the seed is the hash of the next block
    uint256 public constant ANSWER_WINDOW_BLOCKS = 64; // < 256: the seed's hash stays readable
    uint256 public constant UNBOND_DELAY_BLOCKS = 1024; // > SEED_DELAY + ANSWER_WINDOW
    uint256 public constant STORAGE_SLASH_BPS = 1000; // 10 % of the bond per unanswered challenge
    uint256 public constant COMPUTE_SLASH_BPS = 1000; // 10 % of the bond per proven response
    uint256 public constant BPS = 10_000;
    uint256 public constant SECTOR_BYTES = 256;
    uint256 public constant SECTORS_PER_SEGMENT = 1024;
    uint8 public constant FINDING_COUNT = 6; // latency, refusal, wrong output, withheld cells, storage, other
    int32 public constant MAX_SCORE_DELTA = 100;
    uint256 public constant PAYMENT_GAS = 30_000; // gas a third-party payment may use
    uint256 public constant MAX_PAGE = 100; // subjects per page of `getSubjectsPage`

    uint8 public constant FAULT_WRONG_FEE = 1;
    uint8 public constant FAULT_WRONG_MODEL = 2;

    uint8 public constant STATUS_NONE = 0;
    uint8 public constant STATUS_OPEN = 1;
    uint8 public constant STATUS_ANSWERED = 2;
    uint8 public constant STATUS_SLASHED = 3;

    bytes32 public constant CUSTODY_TYPEHASH = keccak256(
        "Custody(uint256 txSeq,uint256 startSector,uint256 dataSectors,uint256 flowLength,uint32 shardId,uint32 numShard,uint256 validUntil)"
    );
    bytes32 public constant RESPONSE_TYPEHASH = keccak256(
        "Response(bytes32 requestHash,bytes32 responseHash,string modelId,bytes32 modelHash,uint256 inputTokens,uint256 outputTokens,uint256 fee)"
    );
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    /// @notice A storage node's signed statement: "I hold shard (shardId, numShard) of the file
    /// submitted as `txSeq`, whose data is flow sectors [startSector, startSector + dataSectors),
    /// the flow being `flowLength` sectors after it, until block `validUntil`".
    struct Custody {
        uint256 txSeq;
        uint256 startSector;
        uint256 dataSectors;
        uint256 flowLength;
        uint32 shardId;
        uint32 numShard;
        uint256 validUntil;
    }

    /// @notice InferenceServing's Response (zgos/compute/spec/vouchers.py, message 2).
    struct Response {
        bytes32 requestHash;
        bytes32 responseHash;
        string modelId;
        bytes32 modelHash;
        uint256 inputTokens;
        uint256 outputTokens;
        uint256 fee;
    }

    struct Bond {
        uint256 amount;
        uint64 unlockBlock; // 0: bonded; else withdrawable from this block
        uint32 openChallenges;
    }

    struct Auditor {
        uint256 stake;
        uint64 unlockBlock; // 0: active; else leaving, withdrawable from this block
    }

    /// @dev Five storage slots: what an answer needs of the custody, packed (its 64-bit fields
    /// are checked at opening); the deadline is `seedBlock + ANSWER_WINDOW_BLOCKS`.
    struct Challenge {
        address operator;
        uint64 seedBlock;
        uint8 status;
        address challenger;
        uint96 fee;
        bytes32 flowRoot;
        uint64 txSeq;
        uint64 startSector;
        uint64 dataSectors;
        uint64 flowLength;
        uint32 shardId;
        uint32 numShard;
    }

    /// @notice A challenge as `getChallenge` shows it (the custody without its `validUntil`).
    struct ChallengeView {
        address operator;
        address challenger;
        uint64 seedBlock;
        uint64 deadline; // last block an answer is accepted in
        uint8 status;
        uint256 fee;
        bytes32 flowRoot;
        Custody custody;
    }

    struct Record {
        int256 score;
        uint64 faults;
        uint64 slashes;
        uint256 slashed; // neuron taken from its bonds
    }

    struct Subject {
        address operator;
        uint8 kind;
    }

    Flow public immutable flow;
    NodeRegistry public immutable nodes;
    InferenceServing public immutable serving;
    DASigners public immutable daSigners;
    uint256 public immutable minBond;
    uint256 public immutable minAuditorStake;
    uint256 public immutable challengeFee;
    bytes32 private immutable servingDomainSeparator;

    mapping(address => mapping(uint8 => Bond)) private bonds;
    mapping(address => Auditor) private auditors;
    mapping(uint256 => Challenge) private challenges;
    uint256 public challengeCount;
    mapping(bytes32 => bool) public usedEvidence; // response digests already slashed for
    mapping(bytes32 => bool) public usedReports; // keccak(auditor, subject, kind, evidenceRoot)
    mapping(address => mapping(uint8 => Record)) private records;
    mapping(address => mapping(uint8 => bool)) private known;
    mapping(address => uint256) public credits; // payments a recipient refused, to withdraw
    Subject[] private subjects;

    event Bonded(address indexed operator, uint8 indexed kind, uint256 amount, uint256 total);
    event UnbondRequested(address indexed operator, uint8 indexed kind, uint256 unlockBlock);
    event BondWithdrawn(address indexed operator, uint8 indexed kind, uint256 amount);
    event AuditorRegistered(address indexed auditor, uint256 stake);
    event AuditorExitRequested(address indexed auditor, uint256 unlockBlock);
    event AuditorWithdrawn(address indexed auditor, uint256 amount);
    event ChallengeOpened(
        uint256 indexed id, address indexed operator, address indexed challenger, uint256 txSeq,
        bytes32 flowRoot, uint256 seedBlock, uint256 deadline
    );
    event ChallengeAnswered(uint256 indexed id, address indexed operator, uint256 sector);
    event ChallengeSlashed(uint256 indexed id, address indexed operator, address indexed challenger, uint256 amount);
    event ComputeFaultSlashed(
        address indexed provider, address indexed auditor, bytes32 indexed responseDigest, uint8 faults, uint256 amount
    );
    event PaymentCredited(address indexed to, uint256 amount);
    event CreditWithdrawn(address indexed to, uint256 amount);
    event Reported(
        address indexed subject, uint8 indexed kind, address indexed auditor, uint8 finding, bytes32 evidenceRoot,
        int32 scoreDelta, int256 score, uint64 faults
    );

    error UnknownKind(uint8 kind);
    error NotRegistered(address operator, uint8 kind);
    error BondTooSmall(uint256 amount, uint256 minimum);
    error NotBonded(address operator, uint8 kind);
    error Unbonding(address operator, uint8 kind, uint256 unlockBlock);
    error StillLocked(uint256 unlockBlock, uint32 openChallenges);
    error NotUnbonding(address operator, uint8 kind);
    error NoCredit(address to);
    error StakeTooSmall(uint256 amount, uint256 minimum);
    error AlreadyAuditor(address auditor);
    error NotAuditor(address caller);
    error NotLeaving(address auditor);
    error WrongFee(uint256 paid, uint256 fee);
    error InvalidCustody(string reason);
    error CustodyExpired(uint256 validUntil);
    error BadCustodySignature(address signer, address operator);
    error UnknownTx(uint256 txSeq);
    error UnknownChallenge(uint256 id);
    error NotOpen(uint256 id, uint8 status);
    error NotChallenged(address caller, address operator);
    error SeedNotYetAvailable(uint256 seedBlock, uint256 currentBlock);
    error SeedUnavailable(uint256 seedBlock);
    error AnswerTooLate(uint256 deadline, uint256 currentBlock);
    error StillAnswerable(uint256 deadline, uint256 currentBlock);
    error WrongSectorSize(uint256 size);
    error WrongProofLength(uint256 length, uint256 depth);
    error WrongProof(bytes32 recovered, bytes32 flowRoot);
    error ServiceNotFound(address provider);
    error NotProviderSigner(address signer, address registered);
    error EvidenceReplayed(bytes32 responseDigest);
    error NoFault(bytes32 responseDigest);
    error InvalidFinding(uint8 finding);
    error ScoreDeltaOutOfRange(int32 delta);
    error EvidenceNotOnFlow(bytes32 evidenceRoot);
    error ReportReplayed(bytes32 key);
    error TransferFailed(address to, uint256 amount);

    constructor(
        Flow flow_, NodeRegistry nodes_, InferenceServing serving_, DASigners daSigners_, uint256 minBond_,
        uint256 minAuditorStake_, uint256 challengeFee_
    ) EIP712("zgos AlignmentRegistry", "1") {
        flow = flow_;
        nodes = nodes_;
        serving = serving_;
        daSigners = daSigners_;
        minBond = minBond_;
        minAuditorStake = minAuditorStake_;
        if (challengeFee_ > type(uint96).max) revert WrongFee(challengeFee_, type(uint96).max);
        challengeFee = challengeFee_;
        servingDomainSeparator = keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("zgos InferenceServing"), keccak256("1"), block.chainid, address(serving_))
        );
    }

    // --- operators: bonds ------------------------------------------------------------------

    /// @notice Add `msg.value` to the caller's bond for `kind`; the caller must run such a node.
    function bond(uint8 kind) external payable {
        _checkKind(kind);
        _checkRegistered(msg.sender, kind);
        Bond storage b = bonds[msg.sender][kind];
        if (b.unlockBlock != 0) revert Unbonding(msg.sender, kind, b.unlockBlock);
        uint256 total = b.amount + msg.value;
        if (total < minBond) revert BondTooSmall(total, minBond);
        b.amount = total;
        _know(msg.sender, kind);
        emit Bonded(msg.sender, kind, msg.value, total);
    }

    /// @notice Start unbonding: the bond is slashable until withdrawn, new challenges are
    /// refused from the unlock block on.
    function requestUnbond(uint8 kind) external {
        Bond storage b = _bonded(msg.sender, kind);
        b.unlockBlock = uint64(block.number + UNBOND_DELAY_BLOCKS);
        emit UnbondRequested(msg.sender, kind, b.unlockBlock);
    }

    /// @notice Take back what is left of the bond once unlocked and no challenge is open.
    function withdrawBond(uint8 kind) external {
        Bond storage b = bonds[msg.sender][kind];
        if (b.unlockBlock == 0) revert NotUnbonding(msg.sender, kind);
        if (block.number < b.unlockBlock || b.openChallenges != 0) revert StillLocked(b.unlockBlock, b.openChallenges);
        uint256 amount = b.amount;
        delete bonds[msg.sender][kind];
        emit BondWithdrawn(msg.sender, kind, amount);
        _pay(msg.sender, amount);
    }

    // --- auditors --------------------------------------------------------------------------

    function registerAuditor() external payable {
        Auditor storage a = auditors[msg.sender];
        if (a.stake != 0) revert AlreadyAuditor(msg.sender);
        if (msg.value < minAuditorStake) revert StakeTooSmall(msg.value, minAuditorStake);
        a.stake = msg.value;
        emit AuditorRegistered(msg.sender, msg.value);
    }

    function requestAuditorExit() external {
        Auditor storage a = auditors[msg.sender];
        if (a.stake == 0 || a.unlockBlock != 0) revert NotAuditor(msg.sender);
        a.unlockBlock = uint64(block.number + UNBOND_DELAY_BLOCKS);
        emit AuditorExitRequested(msg.sender, a.unlockBlock);
    }

    function withdrawAuditorStake() external {
        Auditor storage a = auditors[msg.sender];
        if (a.unlockBlock == 0) revert NotLeaving(msg.sender);
        if (block.number < a.unlockBlock) revert StillLocked(a.unlockBlock, 0);
        uint256 amount = a.stake;
        delete auditors[msg.sender];
        emit AuditorWithdrawn(msg.sender, amount);
        _pay(msg.sender, amount);
    }

    function isAuditor(address who) public view returns (bool) {
        Auditor storage a = auditors[who];
        return a.stake >= minAuditorStake && a.stake != 0 && a.unlockBlock == 0;
    }

    modifier onlyAuditor() {
        if (!isAuditor(msg.sender)) revert NotAuditor(msg.sender);
        _;
    }

    // --- storage challenges ----------------------------------------------------------------

    /// @notice EIP-712 digest of a custody statement (what the storage node signs).
    function custodyDigest(Custody memory c) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(
                CUSTODY_TYPEHASH, c.txSeq, c.startSector, c.dataSectors, c.flowLength, c.shardId, c.numShard, c.validUntil
            ))
        );
    }

    /// @notice Challenge `operator` to prove it holds a random sector of a file it signed custody of.
    function openChallenge(address operator, Custody calldata custody, bytes calldata signature)
        external
        payable
        onlyAuditor
        returns (uint256 id)
    {
        if (msg.value != challengeFee) revert WrongFee(msg.value, challengeFee);
        Bond storage b = _bonded(operator, KIND_STORAGE);
        if (b.unlockBlock != 0 && block.number >= b.unlockBlock) revert Unbonding(operator, KIND_STORAGE, b.unlockBlock);
        _checkCustody(operator, custody, signature);
        bytes32 root = flow.getFlowRootByTxSeq(custody.txSeq);
        if (root == bytes32(0)) revert UnknownTx(custody.txSeq);
        id = ++challengeCount;
        uint64 seedBlock = uint64(block.number + SEED_DELAY_BLOCKS);
        challenges[id] = Challenge(
            operator, seedBlock, STATUS_OPEN, msg.sender, uint96(msg.value), root, uint64(custody.txSeq),
            uint64(custody.startSector), uint64(custody.dataSectors), uint64(custody.flowLength), custody.shardId,
            custody.numShard
        );
        b.openChallenges += 1;
        emit ChallengeOpened(id, operator, msg.sender, custody.txSeq, root, seedBlock, seedBlock + ANSWER_WINDOW_BLOCKS);
    }

    /// @notice The sector challenge `id` asks for; reverts until its seed block is mined.
    function challengeSector(uint256 id) public view returns (uint256) {
        Challenge storage c = _challenge(id);
        return sectorFor(_seed(c.seedBlock), id, _custodyOf(c));
    }

    /// @notice The sector a seed picks: a held segment of the file's data, uniformly, then a
    /// data sector in it, uniformly (zgos/alignment/spec/challenges.py compute_challenge_sector).
    function sectorFor(bytes32 seed, uint256 id, Custody memory c) public pure returns (uint256) {
        (uint256 firstHeld, uint256 count) = _heldSegments(c);
        uint256 r = uint256(keccak256(abi.encode(seed, id)));
        uint256 segment = firstHeld + (r % count) * c.numShard;
        uint256 end = c.startSector + c.dataSectors;
        uint256 lo = Math.max(c.startSector, segment * SECTORS_PER_SEGMENT);
        uint256 hi = Math.min(end, (segment + 1) * SECTORS_PER_SEGMENT);
        return lo + (r / count) % (hi - lo);
    }

    /// @notice The challenged node's answer: the sector's bytes and its path to the flow root.
    function answerChallenge(uint256 id, bytes calldata sector, bytes32[] calldata proof) external {
        Challenge storage c = _challenge(id);
        if (c.status != STATUS_OPEN) revert NotOpen(id, c.status);
        if (msg.sender != c.operator) revert NotChallenged(msg.sender, c.operator);
        uint256 deadline = c.seedBlock + ANSWER_WINDOW_BLOCKS;
        if (block.number > deadline) revert AnswerTooLate(deadline, block.number);
        uint256 index = sectorFor(_seed(c.seedBlock), id, _custodyOf(c));
        if (sector.length != SECTOR_BYTES) revert WrongSectorSize(sector.length);
        uint256 depth = FlowMerkle.depth(c.flowLength);
        if (proof.length != depth) revert WrongProofLength(proof.length, depth);
        bytes32 root = FlowMerkle.foldPath(keccak256(sector), index, proof);
        if (root != c.flowRoot) revert WrongProof(root, c.flowRoot);
        c.status = STATUS_ANSWERED;
        bonds[c.operator][KIND_STORAGE].openChallenges -= 1;
        emit ChallengeAnswered(id, c.operator, index);
        _pay(c.operator, c.fee);
    }

    /// @notice After the answer window, an unanswered challenge slashes the node to the challenger.
    function slashUnanswered(uint256 id) external returns (uint256 amount) {
        Challenge storage c = _challenge(id);
        if (c.status != STATUS_OPEN) revert NotOpen(id, c.status);
        uint256 deadline = c.seedBlock + ANSWER_WINDOW_BLOCKS;
        if (block.number <= deadline) revert StillAnswerable(deadline, block.number);
        c.status = STATUS_SLASHED;
        Bond storage b = bonds[c.operator][KIND_STORAGE];
        b.openChallenges -= 1;
        amount = _slash(c.operator, KIND_STORAGE, STORAGE_SLASH_BPS);
        emit ChallengeSlashed(id, c.operator, c.challenger, amount);
        _payOrCredit(c.challenger, amount + c.fee); // a challenger refusing it cannot block the slash
    }

    function getChallenge(uint256 id) external view returns (ChallengeView memory) {
        Challenge storage c = _challenge(id);
        return ChallengeView(
            c.operator, c.challenger, c.seedBlock, uint64(c.seedBlock + ANSWER_WINDOW_BLOCKS), c.status, c.fee,
            c.flowRoot, _custodyOf(c)
        );
    }

    function _custodyOf(Challenge storage c) internal view returns (Custody memory) {
        return Custody(c.txSeq, c.startSector, c.dataSectors, c.flowLength, c.shardId, c.numShard, 0);
    }

    // --- compute faults --------------------------------------------------------------------

    /// @notice EIP-712 digest of a Response under InferenceServing's domain (what providers sign).
    function responseDigest(Response calldata r) public view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(
            RESPONSE_TYPEHASH, r.requestHash, r.responseHash, keccak256(bytes(r.modelId)), r.modelHash,
            r.inputTokens, r.outputTokens, r.fee
        ));
        return keccak256(abi.encodePacked(hex"1901", servingDomainSeparator, structHash));
    }

    /// @notice Slash `provider` with one of its signed responses that bills off its prices or
    /// names a model hash it did not register; the auditor collects the slashed amount.
    function slashCompute(address provider, Response calldata r, bytes calldata signature)
        external
        onlyAuditor
        returns (uint256 amount)
    {
        _bonded(provider, KIND_COMPUTE);
        InferenceServing.Service memory service;
        try serving.getService(provider) returns (InferenceServing.Service memory s) {
            service = s;
        } catch {
            revert ServiceNotFound(provider);
        }
        bytes32 digest = responseDigest(r);
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(digest, signature);
        if (error != ECDSA.RecoverError.NoError || signer != service.signer) {
            revert NotProviderSigner(signer, service.signer);
        }
        if (usedEvidence[digest]) revert EvidenceReplayed(digest);
        uint8 faults = computeFaults(r.inputTokens, r.outputTokens, r.fee, r.modelHash, service);
        if (faults == 0) revert NoFault(digest);
        usedEvidence[digest] = true;
        amount = _slash(provider, KIND_COMPUTE, COMPUTE_SLASH_BPS);
        emit ComputeFaultSlashed(provider, msg.sender, digest, faults, amount);
        _pay(msg.sender, amount);
    }

    /// @notice FAULT_WRONG_FEE if `fee` is not the fee at the service's prices (an overflowing
    /// price is never equal), FAULT_WRONG_MODEL if the model hash is not the registered one.
    function computeFaults(
        uint256 inputTokens, uint256 outputTokens, uint256 fee, bytes32 modelHash, InferenceServing.Service memory service
    ) public pure returns (uint8 faults) {
        (bool ok1, uint256 a) = Math.tryMul(inputTokens, service.inputPrice);
        (bool ok2, uint256 b) = Math.tryMul(outputTokens, service.outputPrice);
        (bool ok3, uint256 expected) = Math.tryAdd(a, b);
        if (!(ok1 && ok2 && ok3) || expected != fee) faults |= FAULT_WRONG_FEE;
        if (modelHash != service.modelHash) faults |= FAULT_WRONG_MODEL;
    }

    // --- reports ---------------------------------------------------------------------------

    /// @notice Record a finding the chain cannot check; its evidence is a file on Flow.
    function report(address subject, uint8 kind, uint8 finding, bytes32 evidenceRoot, int32 scoreDelta)
        external
        onlyAuditor
    {
        _checkKind(kind);
        if (finding >= FINDING_COUNT) revert InvalidFinding(finding);
        if (scoreDelta > MAX_SCORE_DELTA || scoreDelta < -MAX_SCORE_DELTA) revert ScoreDeltaOutOfRange(scoreDelta);
        (address submitter,) = flow.fileOf(evidenceRoot);
        if (submitter == address(0)) revert EvidenceNotOnFlow(evidenceRoot);
        bytes32 key = keccak256(abi.encode(msg.sender, subject, kind, evidenceRoot));
        if (usedReports[key]) revert ReportReplayed(key);
        usedReports[key] = true;
        _know(subject, kind);
        Record storage rec = records[subject][kind];
        rec.score += scoreDelta;
        if (scoreDelta < 0) rec.faults += 1;
        emit Reported(subject, kind, msg.sender, finding, evidenceRoot, scoreDelta, rec.score, rec.faults);
    }

    // --- views -----------------------------------------------------------------------------

    function getBond(address operator, uint8 kind) external view returns (Bond memory) {
        return bonds[operator][kind];
    }

    function getAuditor(address auditor) external view returns (Auditor memory) {
        return auditors[auditor];
    }

    function getRecord(address subject, uint8 kind) external view returns (Record memory) {
        return records[subject][kind];
    }

    function subjectCount() external view returns (uint256) {
        return subjects.length;
    }

    /// @notice Subjects (bonded or reported) from `offset`, at most `limit` (capped at MAX_PAGE).
    function getSubjectsPage(uint256 offset, uint256 limit)
        external
        view
        returns (Subject[] memory page, Record[] memory recs, uint256 total)
    {
        total = subjects.length;
        if (limit > MAX_PAGE) limit = MAX_PAGE;
        uint256 count = offset >= total ? 0 : Math.min(total - offset, limit);
        page = new Subject[](count);
        recs = new Record[](count);
        for (uint256 i = 0; i < count; i++) {
            page[i] = subjects[offset + i];
            recs[i] = records[page[i].operator][page[i].kind];
        }
    }

    // --- internals -------------------------------------------------------------------------

    function _checkKind(uint8 kind) internal pure {
        if (kind != KIND_STORAGE && kind != KIND_DA_SIGNER && kind != KIND_COMPUTE) revert UnknownKind(kind);
    }

    function _checkRegistered(address operator, uint8 kind) internal view {
        if (kind == KIND_COMPUTE) {
            try serving.getService(operator) returns (InferenceServing.Service memory) {
                return;
            } catch {
                revert NotRegistered(operator, kind);
            }
        }
        if (kind == KIND_DA_SIGNER) {
            try daSigners.getSigner(operator) returns (bytes memory, string memory, uint256, uint64, uint64) {
                return;
            } catch {
                revert NotRegistered(operator, kind);
            }
        }
        try nodes.getNode(operator, kind) returns (NodeRegistry.Node memory) {
            return;
        } catch {
            revert NotRegistered(operator, kind);
        }
    }

    function _bonded(address operator, uint8 kind) internal view returns (Bond storage b) {
        b = bonds[operator][kind];
        if (b.amount == 0) revert NotBonded(operator, kind);
    }

    function _checkCustody(address operator, Custody calldata c, bytes calldata signature) internal view {
        if (block.number > c.validUntil) revert CustodyExpired(c.validUntil);
        if (c.dataSectors == 0) revert InvalidCustody("no data sectors");
        if ((c.txSeq | c.startSector | c.dataSectors | c.flowLength) > type(uint64).max) {
            revert InvalidCustody("beyond 64 bits");
        }
        if (c.startSector == 0 || c.startSector + c.dataSectors > c.flowLength) revert InvalidCustody("range outside the flow");
        if (c.numShard == 0 || (c.numShard & (c.numShard - 1)) != 0 || c.shardId >= c.numShard) {
            revert InvalidCustody("shard");
        }
        (, uint256 count) = _heldSegments(c);
        if (count == 0) revert InvalidCustody("no data segment in the shard");
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(custodyDigest(c), signature);
        if (error != ECDSA.RecoverError.NoError || signer != operator) revert BadCustodySignature(signer, operator);
    }

    /// @dev The first flow segment of the file's data in the custody's shard, and how many there are.
    function _heldSegments(Custody memory c) internal pure returns (uint256 firstHeld, uint256 count) {
        uint256 firstSegment = c.startSector / SECTORS_PER_SEGMENT;
        uint256 lastSegment = (c.startSector + c.dataSectors - 1) / SECTORS_PER_SEGMENT;
        firstHeld = firstSegment + (c.shardId + c.numShard - firstSegment % c.numShard) % c.numShard;
        count = firstHeld > lastSegment ? 0 : (lastSegment - firstHeld) / c.numShard + 1;
    }

    function _seed(uint256 seedBlock) internal view returns (bytes32 seed) {
        if (block.number <= seedBlock) revert SeedNotYetAvailable(seedBlock, block.number);
        seed = blockhash(seedBlock);
        if (seed == bytes32(0)) revert SeedUnavailable(seedBlock);
    }

    function _challenge(uint256 id) internal view returns (Challenge storage c) {
        c = challenges[id];
        if (c.status == STATUS_NONE) revert UnknownChallenge(id);
    }

    function _slash(address operator, uint8 kind, uint256 bps) internal returns (uint256 amount) {
        Bond storage b = bonds[operator][kind];
        amount = b.amount * bps / BPS;
        b.amount -= amount;
        Record storage rec = records[operator][kind];
        rec.faults += 1;
        rec.slashes += 1;
        rec.slashed += amount;
    }

    function _know(address operator, uint8 kind) internal {
        if (known[operator][kind]) return;
        known[operator][kind] = true;
        subjects.push(Subject(operator, kind));
    }

    /// @notice Withdraw what a payment to the caller could not deliver.
    function withdrawCredit() external {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert NoCredit(msg.sender);
        credits[msg.sender] = 0;
        emit CreditWithdrawn(msg.sender, amount);
        _pay(msg.sender, amount);
    }

    /// @dev Pay a third party with bounded gas and no return data copied: a recipient that
    /// reverts, burns gas or returns a huge payload is credited instead of blocking the caller.
    function _payOrCredit(address to, uint256 amount) internal {
        bool ok;
        assembly ("memory-safe") {
            ok := call(PAYMENT_GAS, to, amount, 0, 0, 0, 0)
        }
        if (!ok) {
            credits[to] += amount;
            emit PaymentCredited(to, amount);
        }
    }

    function _pay(address to, uint256 amount) internal {
        if (amount == 0) return;
        (bool ok,) = payable(to).call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
