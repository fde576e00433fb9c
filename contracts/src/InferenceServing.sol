// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {LedgerManager} from "./LedgerManager.sol";

/// @title InferenceServing: the inference service registry and trustless settlement.
/// @notice Providers register one service (URL, model name and sha256, per-token prices, the
/// signer of their responses, verifiability). Users acknowledge a provider's signer before
/// paying it. A provider is paid only with the user's own EIP-712 `Receipt(user, provider,
/// total)`: `total` is cumulative, the contract pays `total - settled` and stores `total`, so
/// one signature check per user settles any number of requests (constant gas) and no
/// receipt can be paid twice. The message format is specified in zgos/compute/vouchers.py.
contract InferenceServing is EIP712 {
    struct Service {
        string url;
        string model;
        bytes32 modelHash;
        uint256 inputPrice; // neuron per input token
        uint256 outputPrice; // neuron per output token
        address signer; // signs every response
        string verifiability; // "" (signed responses only) or e.g. "TeeML"
        uint64 updatedAt;
    }

    struct Voucher {
        address user;
        uint256 total;
        bytes signature;
    }

    bytes32 public constant RECEIPT_TYPEHASH = keccak256("Receipt(address user,address provider,uint256 total)");
    uint256 public constant MAX_URL_BYTES = 256;
    uint256 public constant MAX_MODEL_BYTES = 128;
    uint256 public constant MAX_VOUCHERS_PER_BATCH = 200;

    // Why a voucher in a batch was skipped (batches never revert for one bad voucher).
    uint8 public constant SKIP_BAD_SIGNATURE = 1;
    uint8 public constant SKIP_ALREADY_SETTLED = 2;
    uint8 public constant SKIP_NO_BALANCE = 3;

    LedgerManager public immutable ledger;
    mapping(address => Service) private services;
    address[] private providerList;
    mapping(address => uint256) private providerPosition; // index + 1; 0 = not registered
    mapping(address => mapping(address => address)) public acknowledgedSigner; // user => provider => signer
    mapping(address => mapping(address => uint256)) public settled; // user => provider => total

    event ServiceUpdated(
        address indexed provider,
        string url,
        string model,
        bytes32 modelHash,
        uint256 inputPrice,
        uint256 outputPrice,
        address signer,
        string verifiability
    );
    event ServiceRemoved(address indexed provider);
    event SignerAcknowledged(address indexed user, address indexed provider, address signer);
    event Settled(address indexed provider, address indexed user, uint256 amount, uint256 total);
    event SettlementSkipped(address indexed provider, address indexed user, uint8 reason);

    error InvalidService(string reason);
    error ServiceNotFound(address provider);
    error SignerMismatch(address registered, address given);
    error InvalidReceiptSignature(address user);
    error NothingToSettle(uint256 total, uint256 settled);
    error NoBalance(address user);
    error InvalidBatchSize(uint256 size);

    constructor(LedgerManager ledger_) EIP712("zgos InferenceServing", "1") {
        ledger = ledger_;
    }

    // --- registry ------------------------------------------------------------------------

    function addOrUpdateService(
        string calldata url,
        string calldata model,
        bytes32 modelHash,
        uint256 inputPrice,
        uint256 outputPrice,
        address signer,
        string calldata verifiability
    ) external {
        if (bytes(url).length == 0 || bytes(url).length > MAX_URL_BYTES) revert InvalidService("url");
        if (bytes(model).length == 0 || bytes(model).length > MAX_MODEL_BYTES) revert InvalidService("model");
        if (modelHash == bytes32(0)) revert InvalidService("modelHash");
        if (signer == address(0)) revert InvalidService("signer");
        if (bytes(verifiability).length > MAX_MODEL_BYTES) revert InvalidService("verifiability");
        services[msg.sender] = Service(
            url, model, modelHash, inputPrice, outputPrice, signer, verifiability, uint64(block.timestamp)
        );
        if (providerPosition[msg.sender] == 0) {
            providerList.push(msg.sender);
            providerPosition[msg.sender] = providerList.length;
        }
        emit ServiceUpdated(msg.sender, url, model, modelHash, inputPrice, outputPrice, signer, verifiability);
    }

    function removeService() external {
        uint256 position = providerPosition[msg.sender];
        if (position == 0) revert ServiceNotFound(msg.sender);
        address last = providerList[providerList.length - 1];
        providerList[position - 1] = last;
        providerPosition[last] = position;
        providerList.pop();
        delete providerPosition[msg.sender];
        delete services[msg.sender];
        emit ServiceRemoved(msg.sender);
    }

    function getService(address provider) external view returns (Service memory) {
        if (providerPosition[provider] == 0) revert ServiceNotFound(provider);
        return services[provider];
    }

    function getProviders() external view returns (address[] memory) {
        return providerList;
    }

    // --- users ---------------------------------------------------------------------------

    /// @notice Trust `signer` as the provider's response signer. It must be the registered
    /// one, so a provider cannot swap signers under a user without a new acknowledgement.
    function acknowledgeSigner(address provider, address signer) external {
        if (providerPosition[provider] == 0) revert ServiceNotFound(provider);
        address registered = services[provider].signer;
        if (registered != signer) revert SignerMismatch(registered, signer);
        acknowledgedSigner[msg.sender][provider] = signer;
        emit SignerAcknowledged(msg.sender, provider, signer);
    }

    function revokeAcknowledgement(address provider) external {
        delete acknowledgedSigner[msg.sender][provider];
        emit SignerAcknowledged(msg.sender, provider, address(0));
    }

    // --- settlement ----------------------------------------------------------------------

    /// @notice EIP-712 digest of a receipt (what the user signs).
    function receiptDigest(address user, address provider, uint256 total) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(RECEIPT_TYPEHASH, user, provider, total)));
    }

    /// @notice Settle one user's receipt for the caller; reverts on anything wrong.
    function settle(address user, uint256 total, bytes calldata signature) external returns (uint256 amount) {
        uint8 status;
        uint256 done;
        (status, amount, done) = _settle(user, total, signature);
        if (status == SKIP_BAD_SIGNATURE) revert InvalidReceiptSignature(user);
        if (status == SKIP_ALREADY_SETTLED) revert NothingToSettle(total, done);
        if (status == SKIP_NO_BALANCE) revert NoBalance(user);
    }

    /// @notice Settle many users' receipts for the caller. A bad voucher is skipped with a
    /// `SettlementSkipped` event and does not stop the others. Returns the total paid.
    function settleBatch(Voucher[] calldata vouchers) external returns (uint256 paid) {
        if (vouchers.length == 0 || vouchers.length > MAX_VOUCHERS_PER_BATCH) revert InvalidBatchSize(vouchers.length);
        for (uint256 i = 0; i < vouchers.length; i++) {
            (uint8 status, uint256 amount,) = _settle(vouchers[i].user, vouchers[i].total, vouchers[i].signature);
            if (status != 0) emit SettlementSkipped(msg.sender, vouchers[i].user, status);
            paid += amount;
        }
    }

    function _settle(address user, uint256 total, bytes calldata signature)
        private
        returns (uint8 status, uint256 amount, uint256 done)
    {
        address provider = msg.sender;
        done = settled[user][provider];
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(receiptDigest(user, provider, total), signature);
        if (error != ECDSA.RecoverError.NoError || signer != user || user == address(0)) {
            return (SKIP_BAD_SIGNATURE, 0, done);
        }
        if (total <= done) return (SKIP_ALREADY_SETTLED, 0, done);
        (uint256 balance,,) = ledger.getSubAccount(user, provider);
        amount = total - done < balance ? total - done : balance;
        if (amount == 0) return (SKIP_NO_BALANCE, 0, done);
        settled[user][provider] = done + amount;
        ledger.charge(user, provider, amount);
        emit Settled(provider, user, amount, done + amount);
        return (0, amount, done);
    }
}
