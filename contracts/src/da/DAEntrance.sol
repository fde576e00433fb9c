// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {BLS12381} from "./BLS12381.sol";
import {DASigners} from "./DASigners.sol";

/// @title DAEntrance: blob submissions, fees and BLS quorum certificates.
/// @notice A disperser submits a blob's size and row KZG commitments with a fee of
/// `feePerRow` per row; the contract computes the blob id (zgos/da/blob.py) and records the
/// blob under the current epoch. The id binds the submitter too: the same bytes submitted by
/// someone else are another blob, so a front-runner who copies a pending submission gets its own
/// record and can cancel only that one, never the original's. Signers of that epoch's quorum check their cells against these
/// commitments and BLS-sign `signingMessage(blobId, epoch, quorumId)`. Anyone may then submit a
/// certificate: the signers (ascending addresses) and their aggregated G2 signature, verified
/// here on the EIP-2537 precompiles. It is accepted when the signers hold at least 2/3 of the
/// quorum's stake; the fee is then credited to them in proportion to stake (pull payments).
/// A submitter may cancel an uncertified blob and get its fee back.
contract DAEntrance {
    uint256 public constant BYTES_PER_ROW_PAYLOAD = 126976; // 4096 field elements x 31 bytes
    uint256 public constant MAX_ROWS = 256;
    uint256 public constant COMMITMENT_BYTES = 48;
    uint256 public constant THRESHOLD_NUMERATOR = 2;
    uint256 public constant THRESHOLD_DENOMINATOR = 3;
    bytes32 public constant DOMAIN_TAG = keccak256("zgos.da.certificate.v1");

    enum Status {
        None,
        Submitted,
        Certified,
        Cancelled
    }

    struct Blob {
        address submitter;
        uint64 epoch;
        uint64 size;
        Status status;
        uint256 fee;
    }

    DASigners public immutable signers;
    uint256 public immutable feePerRow;

    mapping(bytes32 => Blob) private blobs;
    mapping(address => uint256) public earnings;

    event BlobSubmitted(
        bytes32 indexed blobId, address indexed submitter, uint64 epoch, uint64 quorumId, uint64 size, uint256 fee, bytes commitments
    );
    event BlobCertified(
        bytes32 indexed blobId, uint64 epoch, uint64 quorumId, uint256 signedStake, uint256 totalStake, address[] signers
    );
    event BlobCancelled(bytes32 indexed blobId, address indexed submitter, uint256 refund);
    event EarningsWithdrawn(address indexed account, uint256 amount);

    error InvalidSize(uint256 size);
    error InvalidCommitments(uint256 expectedBytes, uint256 gotBytes);
    error FeeTooLow(uint256 sent, uint256 required);
    error NoActiveSigners(uint64 epoch);
    error BlobExists(bytes32 blobId);
    error UnknownBlob(bytes32 blobId);
    error NotPending(bytes32 blobId, Status status);
    error NotSubmitter(address caller);
    error InsufficientStake(uint256 signedStake, uint256 totalStake);
    error InvalidSignature();
    error NothingToWithdraw();
    error TransferFailed();

    constructor(DASigners signers_, uint256 feePerRow_) {
        signers = signers_;
        feePerRow = feePerRow_;
    }

    function rowCount(uint256 size) public pure returns (uint256) {
        if (size == 0 || size > MAX_ROWS * BYTES_PER_ROW_PAYLOAD) revert InvalidSize(size);
        return (size + BYTES_PER_ROW_PAYLOAD - 1) / BYTES_PER_ROW_PAYLOAD;
    }

    function blobFee(uint256 size) external view returns (uint256) {
        return rowCount(size) * feePerRow;
    }

    /// @notice keccak256(address submitter || uint64 size || root), where root is the Merkle root
    /// of keccak256(commitment_i), odd node carried up.
    function computeBlobId(address submitter, uint64 size, bytes calldata commitments) public pure returns (bytes32) {
        uint256 rows = rowCount(size);
        if (commitments.length != rows * COMMITMENT_BYTES) {
            revert InvalidCommitments(rows * COMMITMENT_BYTES, commitments.length);
        }
        bytes32[] memory level = new bytes32[](rows);
        for (uint256 i = 0; i < rows; i++) {
            level[i] = keccak256(commitments[i * COMMITMENT_BYTES:(i + 1) * COMMITMENT_BYTES]);
        }
        uint256 n = rows;
        while (n > 1) {
            uint256 m = 0;
            for (uint256 i = 0; i + 1 < n; i += 2) {
                level[m++] = keccak256(abi.encodePacked(level[i], level[i + 1]));
            }
            if (n % 2 == 1) level[m++] = level[n - 1];
            n = m;
        }
        return keccak256(abi.encodePacked(submitter, size, level[0]));
    }

    /// @notice Record a blob for the current epoch; msg.value (>= rows x feePerRow) is its fee.
    function submitBlob(uint64 size, bytes calldata commitments) external payable returns (bytes32 blobId) {
        blobId = computeBlobId(msg.sender, size, commitments);
        uint256 required = rowCount(size) * feePerRow;
        if (msg.value < required) revert FeeTooLow(msg.value, required);
        Status status = blobs[blobId].status;
        if (status == Status.Submitted || status == Status.Certified) revert BlobExists(blobId);
        uint64 epoch = signers.currentEpoch();
        (uint256 total,) = signers.quorumStake(epoch);
        if (total == 0) revert NoActiveSigners(epoch);
        blobs[blobId] = Blob(msg.sender, epoch, size, Status.Submitted, msg.value);
        emit BlobSubmitted(blobId, msg.sender, epoch, signers.QUORUM_ID(), size, msg.value, commitments);
    }

    /// @notice The 32-byte message each signer BLS-signs (PoP ciphersuite, hashed to G2).
    function signingMessage(bytes32 blobId, uint64 epoch, uint64 quorumId) public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TAG, block.chainid, address(this), blobId, epoch, quorumId));
    }

    /// @notice Certify a blob: `members` (ascending) signed; `signature` is their aggregate (G2).
    function submitCertificate(bytes32 blobId, address[] calldata members, bytes calldata signature) external {
        Blob storage blob = blobs[blobId];
        if (blob.status == Status.None) revert UnknownBlob(blobId);
        if (blob.status != Status.Submitted) revert NotPending(blobId, blob.status);
        uint64 epoch = blob.epoch;
        (uint256 total,) = signers.quorumStake(epoch);
        (bytes memory aggregatePubkey, uint256 signedStake, uint256[] memory stakes) = signers.aggregate(members, epoch);
        if (members.length == 0 || signedStake * THRESHOLD_DENOMINATOR < total * THRESHOLD_NUMERATOR) {
            revert InsufficientStake(signedStake, total);
        }
        bytes memory message = abi.encodePacked(signingMessage(blobId, epoch, signers.QUORUM_ID()));
        if (signature.length != BLS12381.G2_BYTES || !BLS12381.verify(aggregatePubkey, message, signature, BLS12381.SIG_DST)) {
            revert InvalidSignature();
        }
        blob.status = Status.Certified;
        _payFee(blob.fee, members, stakes, signedStake);
        emit BlobCertified(blobId, epoch, signers.QUORUM_ID(), signedStake, total, members);
    }

    function _payFee(uint256 fee, address[] calldata members, uint256[] memory stakes, uint256 signedStake) private {
        uint256 paid = 0;
        for (uint256 i = 0; i < members.length; i++) {
            uint256 share = (fee * stakes[i]) / signedStake;
            earnings[members[i]] += share;
            paid += share;
        }
        earnings[members[0]] += fee - paid; // rounding dust
    }

    /// @notice The submitter takes back the fee of a blob that was not certified.
    function cancelBlob(bytes32 blobId) external {
        Blob storage blob = blobs[blobId];
        if (blob.status == Status.None) revert UnknownBlob(blobId);
        if (blob.submitter != msg.sender) revert NotSubmitter(msg.sender);
        if (blob.status != Status.Submitted) revert NotPending(blobId, blob.status);
        blob.status = Status.Cancelled;
        uint256 refund = blob.fee;
        blob.fee = 0;
        (bool ok,) = msg.sender.call{value: refund}("");
        if (!ok) revert TransferFailed();
        emit BlobCancelled(blobId, msg.sender, refund);
    }

    function withdrawEarnings() external {
        uint256 amount = earnings[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        earnings[msg.sender] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
        emit EarningsWithdrawn(msg.sender, amount);
    }

    function getBlob(bytes32 blobId)
        external
        view
        returns (address submitter, uint64 epoch, uint64 size, Status status, uint256 fee)
    {
        Blob storage b = blobs[blobId];
        return (b.submitter, b.epoch, b.size, b.status, b.fee);
    }

    function isCertified(bytes32 blobId) external view returns (bool) {
        return blobs[blobId].status == Status.Certified;
    }
}
